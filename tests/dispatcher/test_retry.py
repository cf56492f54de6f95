"""The retry policy's backoff and the idempotency key of a step."""

from __future__ import annotations

import random

import pytest

from services.dispatcher.retry import RetryPolicy, idempotency_key

POLICY = RetryPolicy(base_ms=100, cap_ms=5_000)


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 100), (2, 200), (3, 400), (6, 3_200), (7, 5_000), (20, 5_000), (500, 5_000)],
)
def test_the_ceiling_doubles_per_attempt_up_to_the_cap(
    attempt: int, ceiling: int
) -> None:
    assert POLICY.ceiling_ms(attempt) == ceiling


def test_backoff_is_drawn_over_the_whole_range_up_to_the_ceiling() -> None:
    rng = random.Random(3)
    draws = [POLICY.backoff_ms(3, rng=rng) for _ in range(5_000)]

    assert min(draws) >= 0
    assert max(draws) <= 400
    # Full jitter: the draws cover the range, not just its top.
    assert min(draws) < 40
    assert max(draws) > 360
    assert 150 < sum(draws) / len(draws) < 250


def test_retry_after_longer_than_the_draw_is_honoured() -> None:
    rng = random.Random(5)

    waits = [POLICY.backoff_ms(1, retry_after_ms=30_000, rng=rng) for _ in range(200)]

    assert min(waits) == 30_000


def test_retry_after_shorter_than_the_draw_keeps_the_draw() -> None:
    for seed in range(50):
        draw = POLICY.backoff_ms(6, rng=random.Random(seed))

        wait = POLICY.backoff_ms(6, retry_after_ms=1_000, rng=random.Random(seed))

        assert wait == max(draw, 1_000)


def test_an_attempt_before_the_first_is_refused() -> None:
    with pytest.raises(ValueError, match="attempt from 1"):
        POLICY.ceiling_ms(0)


def test_a_cap_below_the_base_is_refused() -> None:
    with pytest.raises(ValueError, match="base_ms <= cap_ms"):
        RetryPolicy(base_ms=1_000, cap_ms=10)


def test_idempotency_key_is_the_same_for_every_computation_of_a_step() -> None:
    first = idempotency_key("run-1", "2.then.0")

    assert idempotency_key("run-1", "2.then.0") == first
    assert len(first) == 32
    assert int(first, 16) >= 0


def test_idempotency_keys_differ_between_steps_and_runs() -> None:
    keys = {
        idempotency_key(run, step)
        for run in ("run-1", "run-2", "run-1.2")
        for step in ("0", "1", "2.then.0", "2")
    }

    assert len(keys) == 12
