"""Fair round robin across replicas: smooth weighted round robin in one Redis script.

Each pool (one assignment step of one workflow) keeps a hash in Redis from user to
current weight. Choosing runs atomically in a Lua script, so replicas taking turns
at the same pool never hand out the same turn twice:

1. add each offered user's weight to their current weight;
2. choose the user with the highest current weight (the first listed on a tie);
3. subtract the total weight from the chosen user's current weight.

Over any run of `sum(weights)` turns each user is chosen exactly `weight` times,
and the choices are spread out rather than bunched (weights 5, 1, 1 give
a a b a c a a, not a a a a a b c). Users not offered this turn (unavailable, or
removed from the step) are dropped from the hash, so they come back fresh.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

_CHOOSE = """
local n = #ARGV - 1
local peek = ARGV[#ARGV] == '1'
local total = 0
local best, best_weight = nil, nil
local offered = {}
local current = {}
for i = 1, n, 2 do
  local user = ARGV[i]
  local weight = tonumber(ARGV[i + 1])
  offered[user] = true
  local value = tonumber(redis.call('HGET', KEYS[1], user) or '0') + weight
  current[user] = value
  total = total + weight
  if best == nil or value > best_weight then
    best, best_weight = user, value
  end
end
if peek then return best end
for user, value in pairs(current) do
  if user == best then value = value - total end
  redis.call('HSET', KEYS[1], user, tostring(value))
end
for _, user in ipairs(redis.call('HKEYS', KEYS[1])) do
  if not offered[user] then redis.call('HDEL', KEYS[1], user) end
end
return best
"""


class NoCandidatesError(ValueError):
    """Every user of a round robin is unavailable (or none was given)."""


class RoundRobin:
    """Chooses the next user of a pool, fairly across every replica.

    Args:
        redis: the Redis every replica shares.
        namespace: prefix of the pools' keys (environment prefix included).
    """

    def __init__(self, redis: Redis, *, namespace: str) -> None:
        self._namespace = namespace
        self._choose = redis.register_script(_CHOOSE)

    async def next(
        self, pool: str, members: Sequence[tuple[str, int]], *, peek: bool = False
    ) -> str:
        """Take the next turn of `pool` among `members` (user, weight) and return it.

        With `peek`, return who would be chosen without taking the turn. Raises
        NoCandidatesError when `members` is empty and ValueError for a weight below 1.
        """
        if not members:
            raise NoCandidatesError(f"round robin {pool!r} has no available user")
        args: list[str | int] = []
        for user, weight in members:
            if weight < 1:
                raise ValueError(f"expected a weight of at least 1, got {weight!r}")
            args += [user, weight]
        args.append(1 if peek else 0)
        chosen = await self._choose(keys=[f"{self._namespace}:{pool}"], args=args)
        return chosen.decode() if isinstance(chosen, bytes) else str(chosen)
