"""Smooth weighted round robin in Redis, shared by every replica."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest
from redis.asyncio import Redis

from services.actions.roundrobin import NoCandidatesError, RoundRobin


@pytest.fixture
def rotation(redis: Redis) -> RoundRobin:
    return RoundRobin(redis, namespace=f"test-{uuid.uuid4().hex[:8]}")


async def test_weights_share_turns_smoothly(rotation: RoundRobin) -> None:
    members = [("jane", 5), ("john", 1), ("jack", 1)]

    turns = [await rotation.next("pool", members) for _ in range(7)]

    assert turns == ["jane", "jane", "john", "jane", "jack", "jane", "jane"]


async def test_concurrent_replicas_never_take_the_same_turn(redis_url: str) -> None:
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    replicas = [Redis.from_url(redis_url) for _ in range(4)]
    rotations = [RoundRobin(client, namespace=namespace) for client in replicas]
    members = [("jane", 2), ("john", 1), ("jack", 1)]

    turns = await asyncio.gather(
        *(rotations[i % 4].next("pool", members) for i in range(40))
    )

    assert Counter(turns) == {"jane": 20, "john": 10, "jack": 10}
    for client in replicas:
        await client.aclose()


async def test_peeking_takes_no_turn(rotation: RoundRobin) -> None:
    members = [("jane", 1), ("john", 1)]

    peeked = [await rotation.next("pool", members, peek=True) for _ in range(3)]
    taken = await rotation.next("pool", members)

    assert peeked == ["jane", "jane", "jane"] and taken == "jane"
    assert await rotation.next("pool", members) == "john"


async def test_a_user_leaving_the_pool_restarts_fresh(rotation: RoundRobin) -> None:
    await rotation.next("pool", [("jane", 1), ("john", 1)])

    turns = [await rotation.next("pool", [("john", 1), ("jack", 1)]) for _ in range(4)]

    assert Counter(turns) == {"john": 2, "jack": 2}


async def test_no_available_user_raises(rotation: RoundRobin) -> None:
    with pytest.raises(NoCandidatesError):
        await rotation.next("pool", [])
