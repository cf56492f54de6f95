"""Which delay tier a wait goes to, with which record timestamp, on which partition.

Every message of a tier waits the tier's delay counted from its record timestamp, so
a relay can tell when a message leaves its tier from the timestamp alone, and a
partition whose records were appended in timestamp order is ordered by leaving
time too. Three rules keep it that way and make a wait end exactly when due:

1. **Largest tier first.** A wait goes to the largest tier not longer than what
   remains; what remains after it goes to the next tier, and so on.
2. **The sub-second rest first.** Every tier is a whole number of seconds, so the
   part of a wait below one second is spent first: the record timestamp is set on
   the due time's sub-second phase (about `from_ms + rest`). Every later hop is then
   whole seconds, and the last one leaves its tier exactly at the due time. A wait
   shorter than the smallest tier waits in it with a timestamp set back instead
   (`due - 1s`).
3. **Partition by phase.** The sub-second phase of the due time (`due % 1s`) picks
   the partition, and it stays the same through every hop. Records of one
   partition written together then differ in their rest by less than
   `1s / partitions` (`aligned_timestamp`), so a record whose timestamp was set
   ahead holds back the ones behind it by no more than that; writers also produce
   each batch of hops in timestamp order. (Partitioning by run id would let a
   record set ~1s ahead delay everything behind it by up to 1s.) The precision of
   the delays is thus about one second divided by the tiers' partition count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from math import gcd

from signalflow.topics import DELAY_TIERS, DelayTier


def tier_ms(tier: DelayTier) -> int:
    """The tier's delay in whole milliseconds."""
    known = _MS.get(tier.label)
    if known is not None and tier in DELAY_TIERS:
        return known
    return int(tier.delay.total_seconds() * 1000)


_MS = {tier.label: int(tier.delay.total_seconds() * 1000) for tier in DELAY_TIERS}


SMALLEST = DELAY_TIERS[0]
SMALLEST_MS = tier_ms(SMALLEST)
#: Every tier is a whole multiple of this; the rest of a wait below it is spent first.
GRAIN_MS = reduce(gcd, (tier_ms(tier) for tier in DELAY_TIERS))
_BY_SIZE = [(tier_ms(tier), tier) for tier in sorted(DELAY_TIERS, key=tier_ms)][::-1]

#: A partition count for every tier, or a function giving each tier's.
PartitionsOf = int | Callable[[DelayTier], int]


@dataclass(frozen=True)
class Hop:
    """One stay in a tier: the partition, the record's timestamp, and when it
    leaves the tier."""

    tier: DelayTier
    timestamp_ms: int
    partition: int

    @property
    def leaves_at_ms(self) -> int:
        return self.timestamp_ms + tier_ms(self.tier)


def tier_for(remaining_ms: int) -> DelayTier | None:
    """The largest tier not longer than `remaining_ms`; None below the smallest."""
    for delay_ms, tier in _BY_SIZE:
        if delay_ms <= remaining_ms:
            return tier
    return None


def plan_hop(due_ms: int, from_ms: int, *, partitions: PartitionsOf) -> Hop | None:
    """The next stay of a wait that ends at `due_ms`, counted from `from_ms`;
    `partitions` tells how many partitions a tier's topic has (a count stands for
    every tier).

    Returns None when the wait is over (`due_ms <= from_ms`): the message goes to
    its target. The hop never leaves its tier after `due_ms`.
    """
    remaining = due_ms - from_ms
    if remaining <= 0:
        return None
    tier = tier_for(remaining)
    count = partitions if isinstance(partitions, int) else partitions(tier or SMALLEST)
    partition = phase_partition(due_ms, count)
    if tier is None:
        return Hop(SMALLEST, due_ms - SMALLEST_MS, partition)
    return Hop(tier, aligned_timestamp(due_ms, from_ms, partitions=count), partition)


def next_hop(
    due_ms: int, *, left_at_ms: int, now_ms: int, partitions: PartitionsOf
) -> Hop | None:
    """Where a message goes when it leaves a tier that it was due to leave at
    `left_at_ms`; None when it goes to its target.

    Planned from the time it was due to leave rather than from `now_ms`, so a relay
    that forwards late does not push the due time back; the wall clock alone
    decides whether the wait is over, so nothing reaches its target early.
    """
    if now_ms >= due_ms:
        return None
    return plan_hop(due_ms, left_at_ms, partitions=partitions) or plan_hop(
        due_ms, now_ms, partitions=partitions
    )


def phase_partition(due_ms: int, partitions: int) -> int:
    """The partition of a delay topic with `partitions` partitions for a due time."""
    if partitions < 1:
        raise ValueError(f"expected at least one partition, got {partitions!r}")
    return (due_ms % GRAIN_MS) * partitions // GRAIN_MS


def aligned_timestamp(due_ms: int, from_ms: int, *, partitions: int) -> int:
    """The record timestamp of a wait's first hop, written at `from_ms`.

    Its sub-second phase is the due time's, so every later hop is whole seconds.
    Among the waits of one partition written at the same moment, it differs by no
    more than the partition's phase range (`1s / partitions`): each partition
    counts its phases from its own lowest one, not from `from_ms`. It lies after
    `from_ms - 1s/partitions` and before `from_ms + 1s`, on the phase of `due_ms`, so
    a hop into the largest tier not longer than the remaining time still leaves it
    by `due_ms`. A wait passed on from tier to tier keeps its timestamp chain: for
    `from_ms` on the due time's phase the result is `from_ms` itself.
    """
    width = -(-GRAIN_MS // partitions)
    bucket = phase_partition(due_ms, partitions)
    lowest_phase = -(-bucket * GRAIN_MS // partitions)
    start = from_ms - width + 1
    bucket_start = start + (lowest_phase - start) % GRAIN_MS
    return bucket_start + due_ms % GRAIN_MS - lowest_phase
