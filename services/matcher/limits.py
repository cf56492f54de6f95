"""Caps shared by every replica, counted in Redis.

A claim asks for one place under a limit for one member (a run id, or a person of
a test run). The Lua script below does the check, the increment, the expiry and
the membership in one atomic step, so replicas that claim at the same moment never
exceed the limit together. A member that already holds a place keeps it: asking
again (a record delivered twice after a crash) answers yes without counting twice.

Keys (with the environment's topic prefix):

- `<prefix>signalflow:cap:rep:<workflow>:<period>:<rep>`: enrollments per rep and run;
- `<prefix>signalflow:cap:run:<workflow>:<period>`: enrollments per run;
- `<prefix>signalflow:test:<command id>`: prospects of one test or dry run.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import redis.asyncio as redis

log = logging.getLogger(__name__)

CLAIM_SCRIPT = """
local members = KEYS[1] .. ':members'
if redis.call('SISMEMBER', members, ARGV[1]) == 1 then
  return 1
end
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count >= tonumber(ARGV[2]) then
  return 0
end
redis.call('INCR', KEYS[1])
redis.call('SADD', members, ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', members, ARGV[3])
return 1
"""

RELEASE_SCRIPT = """
local members = KEYS[1] .. ':members'
if redis.call('SREM', members, ARGV[1]) == 1 then
  redis.call('DECR', KEYS[1])
  return 1
end
return 0
"""


class SharedLimits:
    """Claims places under limits that all replicas share.

    Args:
        client: an asyncio Redis client.
        prefix: the environment's topic prefix, so environments sharing a Redis
            do not count together.
        ttl: how long a counter lives after its last claim; longer than any run.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str,
        ttl: timedelta = timedelta(days=40),
    ) -> None:
        self._client = client
        self._prefix = f"{prefix}signalflow:"
        self._ttl_s = int(ttl.total_seconds())
        self._claim = client.register_script(CLAIM_SCRIPT)
        self._release = client.register_script(RELEASE_SCRIPT)

    def rep_key(self, workflow_id: str, period: str, rep: str) -> str:
        return f"{self._prefix}cap:rep:{workflow_id}:{period}:{rep}"

    def run_key(self, workflow_id: str, period: str) -> str:
        return f"{self._prefix}cap:run:{workflow_id}:{period}"

    def test_key(self, command_id: str) -> str:
        return f"{self._prefix}test:{command_id}"

    async def claim(self, key: str, member: str, limit: int) -> bool:
        """Take one place under `limit` at `key` for `member`; False when full.

        Raises redis' ConnectionError when Redis cannot be reached: the caller's
        record is then processed again.
        """
        result = await self._claim(keys=[key], args=[member, limit, self._ttl_s])
        return bool(int(result))

    async def release(self, key: str, member: str) -> None:
        """Give back `member`'s place at `key` (when its enrollment was not sent)."""
        await self._release(keys=[key], args=[member])

    async def count(self, key: str) -> int:
        """How many places are taken at `key`."""
        value = await self._client.get(key)
        return int(value or 0)
