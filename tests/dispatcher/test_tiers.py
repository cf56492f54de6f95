"""Which tier a wait goes to, and that a chain of hops ends exactly when due."""

from __future__ import annotations

import random

import pytest

from services.dispatcher.tiers import (
    GRAIN_MS,
    aligned_timestamp,
    next_hop,
    phase_partition,
    plan_hop,
    tier_for,
    tier_ms,
)
from signalflow.topics import DELAY_TIERS

SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE


@pytest.mark.parametrize(
    ("remaining_ms", "label"),
    [
        (999, None),
        (1_000, "1s"),
        (9_999, "1s"),
        (10_000, "10s"),
        (59_999, "10s"),
        (MINUTE, "1m"),
        (10 * MINUTE - 1, "1m"),
        (10 * MINUTE, "10m"),
        (HOUR, "1h"),
        (10 * HOUR - 1, "1h"),
        (10 * HOUR, "10h"),
        (90 * 24 * HOUR, "10h"),
    ],
)
def test_tier_is_the_largest_not_longer_than_what_remains(
    remaining_ms: int, label: str | None
) -> None:
    tier = tier_for(remaining_ms)

    assert (tier.label if tier else None) == label


def test_every_tier_is_a_whole_number_of_grains() -> None:
    assert all(tier_ms(tier) % GRAIN_MS == 0 for tier in DELAY_TIERS)


def test_a_wait_that_is_over_goes_to_its_target() -> None:
    assert plan_hop(1_000, 1_000, partitions=3) is None
    assert plan_hop(1_000, 5_000, partitions=3) is None


def _chain(due_ms: int, start_ms: int, partitions: int) -> list[tuple[str, int, int]]:
    """Follow a wait through the tiers as punctual relays would; return each hop's
    (tier, timestamp, partition)."""
    hops = []
    hop = plan_hop(due_ms, start_ms, partitions=partitions)
    while hop is not None:
        hops.append((hop.tier.label, hop.timestamp_ms, hop.partition))
        hop = next_hop(
            due_ms,
            left_at_ms=hop.leaves_at_ms,
            now_ms=hop.leaves_at_ms,
            partitions=partitions,
        )
    return hops


@pytest.mark.parametrize("seed", range(5))
def test_a_chain_of_hops_leaves_its_last_tier_exactly_when_due(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(2_000):
        start = 1_700_000_000_000 + rng.randrange(10 * SECOND)
        due = start + rng.randrange(1, 3 * HOUR)
        partitions = rng.choice([1, 3, 6, 12])

        hops = _chain(due, start, partitions)

        last_label, last_timestamp, _ = hops[-1]
        leaves = last_timestamp + tier_ms(
            next(t for t in DELAY_TIERS if t.label == last_label)
        )
        assert leaves == due
        # A hop never leaves its tier after the due time.
        for label, timestamp, _ in hops:
            tier = next(t for t in DELAY_TIERS if t.label == label)
            assert timestamp + tier_ms(tier) <= due


def test_every_hop_of_a_wait_uses_the_partition_of_its_due_phase() -> None:
    rng = random.Random(7)
    for _ in range(500):
        start = 1_700_000_000_000 + rng.randrange(SECOND)
        due = start + rng.randrange(1, 20 * MINUTE)

        partitions = {partition for _, _, partition in _chain(due, start, 6)}

        assert partitions == {phase_partition(due, 6)}


def test_first_timestamps_of_one_partition_stay_within_its_phase_range() -> None:
    rng = random.Random(11)
    for _ in range(200):
        written_at = 1_700_000_000_000 + rng.randrange(SECOND)
        for partitions in (3, 6, 12):
            width = -(-GRAIN_MS // partitions)
            by_partition: dict[int, list[int]] = {}
            for _ in range(50):
                due = written_at + rng.randrange(SECOND, 5 * MINUTE)
                stamp = aligned_timestamp(due, written_at, partitions=partitions)
                assert written_at - width < stamp < written_at + GRAIN_MS
                assert stamp % GRAIN_MS == due % GRAIN_MS
                by_partition.setdefault(phase_partition(due, partitions), []).append(
                    stamp
                )
            for stamps in by_partition.values():
                assert max(stamps) - min(stamps) < width


def test_a_wait_shorter_than_the_smallest_tier_leaves_it_when_due() -> None:
    hop = plan_hop(10_250, 10_000, partitions=3)

    assert hop is not None
    assert hop.tier.label == "1s"
    assert hop.leaves_at_ms == 10_250


def test_a_late_relay_plans_from_when_the_record_was_due_to_leave() -> None:
    due = 100_000
    # Left the 10s tier at 50s by plan, forwarded at 50.8s: 50s remain by plan.
    hop = next_hop(due, left_at_ms=50_000, now_ms=50_800, partitions=3)

    assert hop is not None
    assert (hop.tier.label, hop.timestamp_ms, hop.leaves_at_ms) == (
        "10s",
        50_000,
        60_000,
    )


def test_nothing_goes_to_its_target_before_the_wall_clock_reaches_the_due_time() -> (
    None
):
    # By plan the wait is over, but this relay's clock is 30 ms behind.
    hop = next_hop(100_000, left_at_ms=100_000, now_ms=99_970, partitions=3)

    assert hop is not None
    assert hop.leaves_at_ms == 100_000
    assert next_hop(100_000, left_at_ms=100_000, now_ms=100_000, partitions=3) is None


def test_a_partition_count_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one partition"):
        phase_partition(123, 0)
