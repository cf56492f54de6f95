"""A person who moves to an account of another partition, on two partitions'
matchers (in-memory state, a test clock, the real Redis), and the repartitioner's
routing that sends their profile where they were."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as redis
from matcher_harness import START, Harness

from services.matcher.routing import Route, route
from signalflow.contracts import Codec
from signalflow.kafka.clients import partition_for

Json = dict[str, Any]
PARTITIONS = 2
CODEC = Codec.load()
FUNDED_WITH_EMAIL = {
    "kind": "all",
    "of": [
        {"kind": "company_signal", "types": ["funding"]},
        {"kind": "has_email", "value": True},
    ],
}
CHANGED_JOBS_INTO_GROWTH = {
    "kind": "all",
    "of": [
        {"kind": "person_signal", "types": ["job_change"]},
        {"kind": "company_signal", "types": ["hiring_surge"]},
    ],
}


def accounts_of(partition: int) -> Iterator[str]:
    """Account keys that land on `partition` of two."""
    for index in range(1000):
        key = f"acc-{index}"
        if partition_for(key.encode(), PARTITIONS) == partition:
            yield key


OLD, OLD_NEIGHBOUR = list(accounts_of(0))[:2]
NEW = next(accounts_of(1))


@pytest.fixture
async def pair(redis_client: redis.Redis) -> tuple[Harness, Harness]:
    """Partitions 0 and 1 of two, the same workflows active on both."""
    first = Harness(redis_client, partition=0, partitions=PARTITIONS)
    second = Harness(redis_client, partition=1, partitions=PARTITIONS)
    second.limits = first.limits
    for harness in (first, second):
        await harness.activate(FUNDED_WITH_EMAIL, workflow_id="funded")
        await harness.activate(CHANGED_JOBS_INTO_GROWTH, workflow_id="growth")
    return first, second


def carried(handover: Json) -> Json:
    """The handover as the other partition reads it from Kafka."""
    return CODEC.decode("person_handover", CODEC.encode("person_handover", handover))


async def enrolled_then_moved(old: Harness) -> Json:
    """Ann enrolls in `funded` at her old account, then moves partitions; the
    handover her old partition sends."""
    await old.person("ann", OLD)
    await old.signal("funding", OLD)
    await old.person("ann", NEW, updated=START + timedelta(minutes=1))
    [handover] = old.outbox.handovers
    return handover


async def test_a_person_who_moves_takes_their_history_along(
    pair: tuple[Harness, Harness],
) -> None:
    old, new = pair
    await old.person("ann", OLD)
    await old.person("bob", OLD)
    await old.signal("funding", OLD)
    await old.signal("job_change", OLD, "ann", signal_id="jc-1")
    assert sorted(old.outbox.people("funded")) == ["ann", "bob"]

    old.clock.advance(timedelta(hours=1))
    await old.person("ann", NEW)

    [handover] = old.outbox.handovers
    assert handover["profile"]["account_key"] == NEW
    assert [s["signal_id"] for s in handover["signals"]["job_change"]] == ["jc-1"]
    assert handover["enrollments"]["funded"]["count"] == 1
    # Ann is gone from her old partition: her old account's signals pass her by.
    assert old.state.people.get("ann") is None
    assert old.state.members.get(OLD) == ["bob"]
    await old.signal("funding", OLD)
    assert sorted(old.outbox.people()) == ["ann", "bob"]

    new.clock.advance(timedelta(hours=1))
    await new.take_over(carried(handover))
    assert new.state.members.get(NEW) == ["ann"]
    # She entered `funded` once, at her old account; never again.
    await new.signal("funding", NEW)
    assert new.outbox.people("funded") == []
    # Her job change came along: the new account's hiring surge completes her
    # match of `growth`.
    await new.signal("hiring_surge", NEW)
    [enrollment] = new.outbox.enrollments
    assert (enrollment["workflow_id"], enrollment["person_key"]) == ("growth", "ann")
    person_signals = [s for s in enrollment["signals"] if s["scope"] == "PERSON"]
    assert [s["signal_id"] for s in person_signals] == ["jc-1"]


async def test_a_handover_taken_twice_changes_nothing(
    pair: tuple[Harness, Harness],
) -> None:
    old, new = pair
    handover = await enrolled_then_moved(old)

    for _ in range(2):
        await new.take_over(carried(handover))

    assert new.state.enrolled.get("funded|ann") == {
        "g": 1,
        "t": handover["enrollments"]["funded"]["last_at"],
        "b": True,
    }
    assert new.state.members.get(NEW) == ["ann"]


async def test_a_newer_profile_that_came_first_is_kept(
    pair: tuple[Harness, Harness],
) -> None:
    old, new = pair
    handover = await enrolled_then_moved(old)
    # A later profile reached the new partition before the handover did: there
    # Ann is new, and enrolls. Her run id is the one her first enrollment had
    # (the same workflow, person and epoch), so what runs downstream, keyed by
    # run id, runs once.
    await new.person("ann", NEW, email="ann@new.io", updated=START + timedelta(2))
    await new.signal("funding", NEW)
    [again] = new.outbox.enrollments
    [first] = old.outbox.enrollments
    assert (again["person_key"], again["run_id"]) == ("ann", first["run_id"])

    await new.take_over(carried(handover))

    person = new.state.people.get("ann")
    assert person is not None and person["profile"]["email"] == "ann@new.io"
    assert new.state.enrolled.get("funded|ann")["g"] == 1  # type: ignore[index]


async def test_a_person_who_moves_back_before_their_handover_arrives_keeps_it(
    pair: tuple[Harness, Harness],
) -> None:
    old, new = pair
    handover = await enrolled_then_moved(old)
    # Ann moves back before her handover reaches the new partition: the
    # repartitioner sends that profile to her home then, the new partition, which
    # does not hold her yet and passes her on with nothing.
    await new.person("ann", OLD, updated=START + timedelta(minutes=2))
    [empty] = new.outbox.handovers
    assert (empty["profile"]["account_key"], empty["enrollments"]) == (OLD, {})

    # The late handover follows her, with the profile she moved back with.
    await new.take_over(carried(handover))
    [_, passed_on] = new.outbox.handovers
    assert passed_on["profile"] == empty["profile"]
    assert passed_on["enrollments"]["funded"]["count"] == 1
    assert new.state.people.get("ann") is None
    assert new.state.members.get(NEW) is None

    await old.take_over(carried(empty))
    await old.take_over(carried(passed_on))
    assert old.state.members.get(OLD) == ["ann"]
    assert old.state.enrolled.get("funded|ann")["g"] == 1  # type: ignore[index]
    # Whatever enrolled her while her history was on its way repeated her first
    # run id; from now on her history holds her back.
    assert {r["run_id"] for r in old.outbox.enrollments} == {
        old.outbox.enrollments[0]["run_id"]
    }
    enrolled = len(old.outbox.enrollments)
    await old.signal("funding", OLD, signal_id="funding-2")
    await new.signal("funding", NEW)
    assert len(old.outbox.enrollments) == enrolled
    assert new.outbox.enrollments == []


async def test_moves_within_a_partition_and_stale_profiles_hand_nobody_over(
    pair: tuple[Harness, Harness],
) -> None:
    old, _ = pair
    await old.person("ann", OLD, updated=START + timedelta(minutes=5))
    await old.person("ann", OLD_NEIGHBOUR, updated=START + timedelta(minutes=6))
    assert old.state.members.get(OLD_NEIGHBOUR) == ["ann"]
    assert old.state.members.get(OLD) is None
    # An older profile naming another partition's account moves nobody.
    await old.person("ann", NEW, updated=START)
    assert old.outbox.handovers == []
    assert old.state.people.get("ann") is not None


# --- routing ---------------------------------------------------------------------


def person(account: str, minute: int, *, deleted: bool = False) -> Json:
    return {
        "key": "ann",
        "kind": "PERSON",
        "account_key": account,
        "updated_at": int((START + timedelta(minutes=minute)).timestamp() * 1000),
        "deleted": deleted,
    }


def home(account: str, minute: int) -> Json:
    return {"a": account, "u": person(account, minute)["updated_at"]}


@pytest.mark.parametrize(
    ("profile", "known", "expected"),
    [
        pytest.param(person(OLD, 1), None, Route(OLD, home(OLD, 1)), id="first seen"),
        pytest.param(
            person(OLD_NEIGHBOUR, 2),
            home(OLD, 1),
            Route(OLD_NEIGHBOUR, home(OLD_NEIGHBOUR, 2)),
            id="moves within the partition",
        ),
        pytest.param(
            person(NEW, 2),
            home(OLD, 1),
            Route(OLD, home(NEW, 2), moves=True),
            id="moves to another partition: sent where she was",
        ),
        pytest.param(
            person(NEW, 0), home(OLD, 1), Route(OLD, home(OLD, 1)), id="stale"
        ),
        pytest.param(
            person(NEW, 2, deleted=True),
            home(OLD, 1),
            Route(OLD, None),
            id="deleted where she is",
        ),
        pytest.param(
            person(NEW, 2, deleted=True), None, Route(NEW, None), id="deleted unknown"
        ),
    ],
)
def test_routing(profile: Json, known: Json | None, expected: Route) -> None:
    assert route(profile, known, PARTITIONS) == expected
