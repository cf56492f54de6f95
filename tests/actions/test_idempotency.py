"""The Redis record of performed steps and the in-progress claim, on real Redis."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from services.actions.idempotency import (
    Claim,
    ClaimBusyError,
    IdempotencyStore,
    Recorded,
)


@pytest.fixture
def store(redis: Redis) -> IdempotencyStore:
    return IdempotencyStore(
        redis,
        namespace=f"test-{uuid.uuid4().hex[:8]}",
        result_ttl_s=60,
        claim_ttl_s=1.0,
        poll_interval_s=0.02,
    )


async def test_first_acquire_claims_and_a_recorded_result_is_returned_after(
    store: IdempotencyStore,
) -> None:
    claim = await store.acquire("run-1:0", wait_s=0)
    assert isinstance(claim, Claim)

    await store.record(claim, Recorded("OK", {"record_id": "003A"}))

    assert await store.acquire("run-1:0", wait_s=0) == Recorded(
        "OK", {"record_id": "003A"}
    )


async def test_racing_replicas_wait_for_the_holder_and_get_its_result(
    store: IdempotencyStore,
) -> None:
    claim = await store.acquire("run-2:1", wait_s=0)
    assert isinstance(claim, Claim)
    waiting = asyncio.create_task(store.acquire("run-2:1", wait_s=2))
    await asyncio.sleep(0.1)
    assert not waiting.done()

    await store.record(claim, Recorded("OK", {"owner": "sam"}))

    assert await waiting == Recorded("OK", {"owner": "sam"})


async def test_a_released_claim_lets_the_next_attempt_act(
    store: IdempotencyStore,
) -> None:
    first = await store.acquire("run-3:0", wait_s=0)
    assert isinstance(first, Claim)
    await store.release(first)

    second = await store.acquire("run-3:0", wait_s=0)

    assert isinstance(second, Claim) and second.token != first.token


async def test_a_busy_claim_past_the_wait_raises_with_its_remaining_life(
    store: IdempotencyStore,
) -> None:
    await store.acquire("run-4:0", wait_s=0)

    with pytest.raises(ClaimBusyError) as raised:
        await store.acquire("run-4:0", wait_s=0.1)

    assert 0 < raised.value.retry_after_s <= 1.0


async def test_a_crashed_holders_claim_expires(store: IdempotencyStore) -> None:
    await store.acquire("run-5:0", wait_s=0)

    taken = await store.acquire("run-5:0", wait_s=2)

    assert isinstance(taken, Claim)


async def test_releasing_someone_elses_claim_does_nothing(
    store: IdempotencyStore,
) -> None:
    held = await store.acquire("run-6:0", wait_s=0)
    assert isinstance(held, Claim)

    await store.release(Claim("run-6:0", "not-the-token"))

    with pytest.raises(ClaimBusyError):
        await store.acquire("run-6:0", wait_s=0)


async def test_concurrent_claims_on_one_key_let_exactly_one_act(
    store: IdempotencyStore,
) -> None:
    same_key = [store.acquire("run-7:0", wait_s=0) for _ in range(10)]
    distinct = [store.acquire(f"run-8:{index}", wait_s=0) for index in range(40)]

    answers = await asyncio.gather(*same_key, *distinct, return_exceptions=True)

    claims = [answer for answer in answers[:10] if isinstance(answer, Claim)]
    busy = [answer for answer in answers[:10] if isinstance(answer, ClaimBusyError)]
    assert (len(claims), len(busy)) == (1, 9)
    assert all(isinstance(answer, Claim) for answer in answers[10:])


async def test_scripts_are_loaded_again_after_redis_forgets_them(
    store: IdempotencyStore, redis: Redis
) -> None:
    first = await store.acquire("run-9:0", wait_s=0)
    await redis.script_flush()

    second = await store.acquire("run-9:1", wait_s=0)
    assert isinstance(first, Claim) and isinstance(second, Claim)
    await store.record(second, Recorded("OK", {}))

    assert await store.acquire("run-9:1", wait_s=0) == Recorded("OK", {})
