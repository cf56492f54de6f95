"""Effectively-once side effects: a Redis record of the steps already performed.

Every step command carries an idempotency key, the same on every delivery and
every attempt of one step of one run. Before acting, a replica asks Redis in one
atomic script:

- is a result recorded under the key? Then the step was done: return the recorded
  outputs and act no more;
- otherwise, take a short "in progress" claim with `SET NX PX`; the replica that
  gets it acts, every other replica racing on a redelivery of the same command
  waits for the claim to turn into a result (or to vanish, when the holder failed,
  and then tries to take it itself).

After a success the holder records the result with a TTL and drops its claim in one
script; after a failure it only drops the claim, so the retry the dispatcher sends
may act again. A claim outlives a crashed holder by at most its TTL, which must
exceed the longest an action can take (the connectors' timeouts).

Keys share a hash tag, so the scripts also work on a Redis Cluster.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass, field

from redis.asyncio import Redis

log = logging.getLogger(__name__)

_ACQUIRE = """
local done = redis.call('GET', KEYS[1])
if done then return {'done', done} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {'claimed', ''}
end
return {'busy', tostring(redis.call('PTTL', KEYS[2]))}
"""

_RECORD = """
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
"""

_RELEASE = """
if redis.call('GET', KEYS[2]) == ARGV[1] then return redis.call('DEL', KEYS[2]) end
return 0
"""


@dataclass(frozen=True)
class Recorded:
    """The result of a step that was already performed under a key."""

    status: str
    outputs: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps({"status": self.status, "outputs": self.outputs}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Recorded:
        document = json.loads(data)
        return cls(status=str(document["status"]), outputs=dict(document["outputs"]))


@dataclass(frozen=True)
class Claim:
    """This replica's right to perform the step of `key`, until it expires."""

    key: str
    token: str


class ClaimBusyError(Exception):
    """Another replica still holds the claim on a key after the wait ran out.

    `retry_after_s` is how long the claim has left to live.
    """

    def __init__(self, key: str, retry_after_s: float) -> None:
        super().__init__(
            f"step {key!r} is being performed by another replica; it has "
            f"{retry_after_s:.1f}s left to finish"
        )
        self.key = key
        self.retry_after_s = retry_after_s


class IdempotencyStore:
    """Records performed steps by idempotency key in Redis.

    Args:
        redis: a client of the Redis every replica shares (bytes responses).
        namespace: prefix of every key, with the environment's topic prefix in it
            (`signalflow:<prefix>actions:steps`), so environments sharing a Redis
            stay apart.
        result_ttl_s: how long a performed step is remembered; longer than any
            redelivery or retry of it can arrive.
        claim_ttl_s: how long an "in progress" claim lives without its holder.
        poll_interval_s: how often a waiting replica looks at a busy claim again.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        namespace: str,
        result_ttl_s: int,
        claim_ttl_s: float,
        poll_interval_s: float = 0.05,
    ) -> None:
        self._redis = redis
        self._namespace = namespace
        self._result_ttl_s = result_ttl_s
        self._claim_ttl_ms = int(claim_ttl_s * 1000)
        self._poll_interval_s = poll_interval_s
        self._acquire = redis.register_script(_ACQUIRE)
        self._record = redis.register_script(_RECORD)
        self._release = redis.register_script(_RELEASE)

    async def acquire(self, key: str, *, wait_s: float) -> Recorded | Claim:
        """Return the recorded result of `key`, or a claim to perform it now.

        Waits up to `wait_s` while another replica holds the claim. Raises
        ClaimBusyError when it still does after that, and redis errors as they come.
        """
        token = uuid.uuid4().hex
        deadline = time.monotonic() + wait_s
        while True:
            state, value = await self._acquire(
                keys=self._keys(key), args=[token, self._claim_ttl_ms]
            )
            if state == b"done":
                return Recorded.from_json(value)
            if state == b"claimed":
                return Claim(key, token)
            remaining_s = deadline - time.monotonic()
            claim_left_s = max(0.0, int(value) / 1000)
            if remaining_s <= 0:
                raise ClaimBusyError(key, claim_left_s)
            log.debug("step %s is claimed elsewhere; waiting", key)
            await asyncio.sleep(min(self._poll_interval_s, remaining_s))

    async def record(self, claim: Claim, result: Recorded) -> None:
        """Remember `result` for the claim's key and drop the claim, atomically."""
        await self._record(
            keys=self._keys(claim.key),
            args=[claim.token, result.to_json(), self._result_ttl_s],
        )

    async def release(self, claim: Claim) -> None:
        """Drop the claim without a result, if it is still ours."""
        await self._release(keys=self._keys(claim.key), args=[claim.token])

    def _keys(self, key: str) -> list[str]:
        tagged = f"{self._namespace}:{{{key}}}"
        return [f"{tagged}:result", f"{tagged}:claim"]
