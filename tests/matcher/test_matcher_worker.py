"""The matcher as it runs: `signalflow run matcher` on the real broker and Redis.

One replica is shared by the tests of this module (a faust worker takes about ten
seconds to start); the crash test and the two-replica test start their own.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from matcher_process import Feed, MatcherProcess, people_of

from services.matcher.clock import FileClock
from signalflow.definitions import DefinitionLog
from signalflow.kafka.admin import delete_topics, ensure_topics
from signalflow.kafka.clients import partition_for
from signalflow.settings import KafkaSettings, RedisSettings, Settings
from signalflow.workflow import Audience, Workflow

pytestmark = pytest.mark.slow

NOW = datetime.now(UTC)
STEPS = [{"kind": "delay", "params": {"minutes": 1}}]

GUIDE_FILTER = {
    "kind": "all",
    "of": [
        {"kind": "company_signal", "types": ["funding"]},
        {"kind": "person_signal", "types": ["multi_thread"]},
        {"kind": "has_email", "value": True},
        {"kind": "last_activity", "condition": "before", "months": 6, "or_empty": True},
    ],
}


def fresh_settings(kafka_bootstrap: str, redis_url: str) -> Settings:
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap),
        redis=RedisSettings(url=redis_url),
        topic_prefix=f"m{uuid.uuid4().hex[:8]}.",
        default_partitions=3,
    )
    ensure_topics(settings)
    return settings


@dataclass
class Environment:
    settings: Settings
    definitions: DefinitionLog
    feed: Feed
    replicas: list[MatcherProcess] = field(default_factory=list)

    def activate(self, workflow_id: str, version: int, timing: str) -> None:
        """Activate a workflow and wait until every partition has taken it up,
        so what follows is a match that begins after the activation."""
        commands = sum(replica.done("control") for replica in self.replicas)
        self.feed.control("ACTIVATE", workflow_id, version, timing=timing)
        self.feed.flush()
        commands += self.settings.default_partitions
        deadline = time.monotonic() + 60
        while sum(replica.done("control") for replica in self.replicas) < commands:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{workflow_id} was not activated on every partition"
                )
            time.sleep(0.2)

    async def workflow(self, workflow_id: str, audience_filter: dict, **extra) -> int:  # type: ignore[type-arg]
        audience = Audience.model_validate(
            {"id": f"{workflow_id}-a", "name": workflow_id, "filter": audience_filter}
        )
        await self.definitions.save(audience)
        workflow = Workflow.model_validate(
            {
                "id": workflow_id,
                "name": workflow_id,
                "audience_id": audience.id,
                "steps": STEPS,
                "status": "active",
                **extra,
            }
        )
        return await self.definitions.save(workflow)


async def environment(settings: Settings) -> Environment:
    definitions = DefinitionLog(settings)
    await definitions.start()
    return Environment(settings, definitions, Feed(settings))


@pytest.fixture(scope="module")
def shared_settings(kafka_bootstrap: str, redis_url: str) -> Iterator[Settings]:
    settings = fresh_settings(kafka_bootstrap, redis_url)
    yield settings
    delete_topics(settings)


@pytest.fixture(scope="module")
def shared_matcher(
    shared_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MatcherProcess]:
    data = tmp_path_factory.mktemp("matcher") / "replica"
    clock_file = data.with_suffix(".clock")
    process = MatcherProcess(shared_settings, data, clock_file=clock_file).start()
    try:
        process.wait_owning(3)
        yield process
    finally:
        process.stop()


@pytest.fixture
async def env(
    shared_settings: Settings, shared_matcher: MatcherProcess
) -> AsyncIterator[Environment]:
    environment_ = await environment(shared_settings)
    environment_.replicas.append(shared_matcher)
    yield environment_
    await environment_.definitions.stop()


# --- the guide's example ---------------------------------------------------------

OLD = NOW - timedelta(days=200)
RECENT = NOW - timedelta(days=40)

# key: (account, email, last activity, multi-thread signal, expected to enroll)
GUIDE_PEOPLE = {
    "g01": ("fund-1", True, None, True, True),
    "g02": ("fund-1", True, OLD, True, True),
    "g03": ("fund-1", True, RECENT, True, False),  # active lately
    "g04": ("fund-1", False, None, True, False),  # no email
    "g05": ("fund-1", True, None, False, False),  # not multi-threaded
    "g06": ("fund-2", True, None, True, True),
    "g07": ("fund-2", True, OLD, True, True),
    "g08": ("fund-2", True, OLD, False, False),
    "g09": ("fund-2", False, OLD, True, False),
    "g10": ("fund-2", True, RECENT, True, False),
    "g11": ("fund-3", True, None, True, True),
    "g12": ("fund-3", True, NOW - timedelta(days=190), True, True),
    "g13": ("fund-3", True, NOW - timedelta(days=150), True, False),
    "g14": ("none-1", True, None, True, False),  # account not funded
    "g15": ("none-1", True, OLD, True, False),
    "g16": ("none-2", True, None, True, False),
    "g17": ("none-2", False, None, False, False),
    "g18": ("fund-3", True, None, True, True),
    "g19": ("fund-1", True, OLD, True, True),
    "g20": ("none-1", False, RECENT, False, False),
}


async def test_guide_example_enrolls_exactly_the_matching_people_once(
    env: Environment,
) -> None:
    version = await env.workflow("guide", GUIDE_FILTER)
    env.activate("guide", version, "FUTURE_ONLY")
    for key, (account, email, last, _, _) in GUIDE_PEOPLE.items():
        env.feed.profile(
            key, account, email=f"{key}@x.io" if email else None, last_activity=last
        )
    for account in ("fund-1", "fund-2", "fund-3"):
        env.feed.signal("funding", account)
    for account in ("none-1", "none-2"):
        env.feed.signal("hiring_surge", account)
    for key, (account, _, _, multi_thread, _) in GUIDE_PEOPLE.items():
        if multi_thread:
            env.feed.signal("multi_thread", account, key)
    # The same events again: nobody enrolls twice.
    for account in ("fund-1", "fund-2", "fund-3"):
        env.feed.signal("funding", account)
    env.feed.flush()

    expected = sorted(key for key, row in GUIDE_PEOPLE.items() if row[4])
    records = [
        r
        for r in env.feed.enrollments(until=len(expected), quiet_s=4)
        if r["workflow_id"] == "guide"
    ]
    assert people_of(records) == expected
    sample = next(r for r in records if r["person_key"] == "g01")
    assert {s["type"] for s in sample["signals"]} == {"funding", "multi_thread"}
    assert all(outcome["held"] for outcome in sample["explanation"])


def enrollments_of(
    feed: Feed, workflow_id: str, count: int, *, quiet_s: float = 3.0
) -> list[dict[str, Any]]:
    """The enrollments of one workflow, once there are `count` and `quiet_s`
    passed without more (what there are after a minute otherwise)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        records = feed.enrollments(quiet_s=0.5)
        if sum(r["workflow_id"] == workflow_id for r in records) >= count:
            break
    time.sleep(quiet_s)
    return [r for r in feed.enrollments(quiet_s=0.5) if r["workflow_id"] == workflow_id]


def account_on(partition: int, partitions: int, prefix: str) -> str:
    """An account key that lands on `partition`."""
    for index in range(1000):
        key = f"{prefix}-{index}"
        if partition_for(key.encode(), partitions) == partition:
            return key
    raise AssertionError(f"no key of {prefix!r} lands on partition {partition}")


async def test_a_person_who_moves_to_another_partition_enrolls_once(
    env: Environment,
) -> None:
    funded_with_email = {
        "kind": "all",
        "of": [
            {"kind": "company_signal", "types": ["funding"]},
            {"kind": "has_email", "value": True},
        ],
    }
    version = await env.workflow("moves", funded_with_email)
    env.activate("moves", version, "FUTURE_ONLY")
    partitions = env.settings.default_partitions
    old, new = account_on(0, partitions, "mv-old"), account_on(1, partitions, "mv-new")
    first, later = NOW - timedelta(minutes=2), NOW - timedelta(minutes=1)
    env.feed.profile("mv-ann", old, email="ann@x.io", updated=first)
    env.feed.profile("mv-cat", old, updated=first)  # no email: no match yet
    env.feed.signal("funding", old)
    env.feed.flush()
    assert people_of(enrollments_of(env.feed, "moves", 1)) == ["mv-ann"]

    # Both move to an account of another partition; Cat now has an email.
    env.feed.profile("mv-ann", new, email="ann@x.io", updated=later)
    env.feed.profile("mv-cat", new, email="cat@x.io", updated=later)
    env.feed.signal("funding", new)
    env.feed.signal("funding", old)
    env.feed.flush()

    records = enrollments_of(env.feed, "moves", 2, quiet_s=5)
    # Ann entered once, at her old account; Cat once, at her new one.
    assert people_of(records) == ["mv-ann", "mv-cat"]
    cat = next(r for r in records if r["person_key"] == "mv-cat")
    assert (cat["account_key"], cat["_partition"]) == (new, 1)


async def test_bad_input_goes_to_dead_letters_and_the_stream_moves_on(
    env: Environment,
) -> None:
    version = await env.workflow("dl", {"kind": "person_signal", "types": ["new_hire"]})
    env.activate("dl", version, "FUTURE_ONLY")
    env.feed.raw("signals", b"acc", b"not avro at all")
    env.feed.raw("profiles", b"who", b"\xc3\x01" + b"\x00" * 8)
    env.feed.profile("dl-1", "dl-acc", email="a@b.io")
    env.feed.signal("new_hire", "dl-acc", "dl-1")
    env.feed.flush()

    records = env.feed.enrollments(until=1, quiet_s=2)
    assert "dl-1" in people_of(r for r in records if r["workflow_id"] == "dl")
    letters = env.feed.read("dead-letters", "dead_letter", until=2, quiet_s=1)
    sources = sorted(letter["source_topic"] for letter in letters)
    prefix = env.settings.topic_prefix
    assert sources == [f"{prefix}profiles", f"{prefix}signals"]
    assert all(letter["service"] == "matcher" for letter in letters)


async def test_preview_and_test_run_across_partitions(env: Environment) -> None:
    audience_filter = {
        "kind": "compare",
        "object": "person",
        "field": "title",
        "op": "eq",
        "value": "buyer",
    }
    version = await env.workflow("trial", audience_filter)
    for index in range(12):
        env.feed.profile(f"t{index:02d}", f"trial-acc-{index}", title="Buyer")
    env.feed.profile("t-other", "trial-acc-0", title="Engineer")
    env.feed.flush()
    # Profiles reach the matcher through the re-keying step; preview until every
    # partition has them all.
    deadline = time.monotonic() + 30
    while True:
        preview_id = env.feed.control("PREVIEW", "trial", version)
        env.feed.flush()
        statuses = env.feed.read("matcher-status", "matcher_status", quiet_s=1.5)
        answers = [
            s["preview"]
            for s in statuses
            if s["preview"] and s["preview"]["command_id"] == preview_id
        ]
        matching = sum(answer["matching"] for answer in answers)
        if len(answers) == 3 and matching == 12 or time.monotonic() > deadline:
            break
    assert len(answers) == 3  # one per partition
    assert matching == 12
    assert sorted(e for a in answers for e in a["examples"]) == [
        f"t{index:02d}" for index in range(12)
    ]

    env.feed.control("TEST_RUN", "trial", version, limit=5)
    env.feed.control("DRY_RUN", "trial", version, limit=50)
    env.feed.flush()
    records = [
        r
        for r in env.feed.enrollments(until=17, quiet_s=3)
        if r["workflow_id"] == "trial"
    ]
    assert len(people_of(records, "TEST")) == 5
    assert len(people_of(records, "DRY_RUN")) == 12
    assert people_of(records, "LIVE") == []


async def test_time_passing_enrolls_without_a_new_event(
    env: Environment, shared_matcher: MatcherProcess
) -> None:
    # Last activity crosses "before 30 days ago" ten minutes from now; the
    # matcher's clock is then moved on (a clock file) instead of waited for.
    version = await env.workflow(
        "clock",
        {
            "kind": "all",
            "of": [
                {"kind": "person_signal", "types": ["promotion"]},
                {"kind": "last_activity", "condition": "before", "days": 30},
            ],
        },
    )
    env.activate("clock", version, "FUTURE_ONLY")
    last = datetime.now(UTC) - timedelta(days=30) + timedelta(minutes=10)
    env.feed.profile("c-1", "clock-acc", email="c@x.io", last_activity=last)
    env.feed.signal("promotion", "clock-acc", "c-1")
    env.feed.flush()
    early = [r for r in env.feed.enrollments(quiet_s=2) if r["workflow_id"] == "clock"]
    assert early == []
    assert shared_matcher.clock_file is not None
    FileClock.write(
        shared_matcher.clock_file, datetime.now(UTC) + timedelta(minutes=11)
    )
    deadline = time.monotonic() + 30
    late: list[dict] = []  # type: ignore[type-arg]
    while not late and time.monotonic() < deadline:
        records = env.feed.enrollments(quiet_s=1)
        late = [r for r in records if r["workflow_id"] == "clock"]
    shared_matcher.clock_file.unlink()
    assert people_of(late) == ["c-1"]


# --- crashes and replicas --------------------------------------------------------

CRASH_PEOPLE = 240


def account_of(person_key: str) -> str:
    """The account of a person of `stream_workload` (`k0042` works at `kacc-2`)."""
    return f"{person_key[0]}acc-{int(person_key[1:]) % 40}"


def stream_workload(feed: Feed, prefix: str, people: int) -> list[str]:
    """Profiles and two rounds of signals; returns who should enroll (once)."""
    expected = []
    for index in range(people):
        key = f"{prefix}{index:04d}"
        has_email = index % 5 != 0
        feed.profile(key, account_of(key), email=f"{key}@x.io" if has_email else None)
        if has_email:
            expected.append(key)
    for _ in range(2):
        for index in range(people):
            key = f"{prefix}{index:04d}"
            feed.signal("job_change", account_of(key), key)
        feed.flush()
    return sorted(expected)


PAUSE_MS = 8000
STALL_FILTER = {
    "kind": "all",
    "of": [
        {"kind": "person_signal", "types": ["promotion"]},
        {"kind": "has_email", "value": True},
    ],
}
CRASH_FILTER = {
    "kind": "all",
    "of": [
        {"kind": "person_signal", "types": ["job_change"]},
        {"kind": "has_email", "value": True},
    ],
}


async def test_sigkill_mid_stream_then_restart_enrolls_each_once(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    settings = fresh_settings(kafka_bootstrap, redis_url)
    env = await environment(settings)
    # A short session, so the group soon gives the killed replica's partitions
    # to its successor; batches of up to five seconds, so the stream below is
    # one batch, sent and not written out, when the replica is killed.
    replica = partial(
        MatcherProcess,
        settings,
        tmp_path / "replica",
        session_timeout_s=8,
        flush_interval_s=5,
    )
    process = replica().start()
    pauser = redis.Redis.from_url(redis_url)
    try:
        crash = await env.workflow("crash", CRASH_FILTER)
        stall = await env.workflow("stall", STALL_FILTER, limits={"max_per_run": 1000})
        process.wait_owning(3)
        env.replicas.append(process)
        env.activate("crash", crash, "FUTURE_ONLY")
        env.activate("stall", stall, "FUTURE_ONLY")

        # Redis takes no writes for a while: the matcher enrolls people in
        # `crash` (no Redis involved) until the last prospect's promotion makes
        # it claim a place under `stall`'s run cap, and waits there, in the
        # middle of the stream and of a batch. Then it is killed.
        await pauser.client_pause(PAUSE_MS, all=False)
        expected = stream_workload(env.feed, "k", CRASH_PEOPLE)
        promoted = expected[-1]
        env.feed.signal("promotion", account_of(promoted), promoted)
        env.feed.flush()
        sent_before = env.feed.enrollments(until=1, quiet_s=0)
        time.sleep(0.5)
        assert process.done("signals") < 2 * CRASH_PEOPLE + 1
        process.kill()

        restarted = replica()
        restarted.port = process.port
        process = restarted.start()
        process.wait_owning(3)
        records = env.feed.enrollments(
            until=len(expected) + 1, quiet_s=5, timeout_s=120
        )
        crashed = [r for r in records if r["workflow_id"] == "crash"]
        counts = Counter(r["person_key"] for r in crashed)
        assert sorted(counts) == expected
        assert max(counts.values()) == 1
        assert len({r["run_id"] for r in records}) == len(records)
        assert people_of(r for r in records if r["workflow_id"] == "stall") == [
            promoted
        ]
        # The enrollments sent before the kill were found in the topic, not in
        # the tables (their batch was never written out).
        assert sent_before
        assert "sent before a crash" in restarted.log_path.read_text()

        # The recovered tables know who enrolled: the same signals again, once
        # the matcher has written them out, enrolled nobody.
        done = process.wait_settled("signals")
        for key in expected[:20]:
            env.feed.signal("job_change", account_of(key), key)
        env.feed.flush()
        process.wait_done("signals", done + 20)
        again = env.feed.enrollments(quiet_s=1)
        assert len(again) == len(records)
    finally:
        process.stop()
        await pauser.aclose()
        await env.definitions.stop()
        delete_topics(settings)


async def test_two_replicas_enroll_what_one_does(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    settings = fresh_settings(kafka_bootstrap, redis_url)
    env = await environment(settings)
    first = MatcherProcess(settings, tmp_path / "one").start()
    second = MatcherProcess(settings, tmp_path / "two").start()
    try:
        version = await env.workflow("pair", CRASH_FILTER)
        reports = [first.wait_healthy(), second.wait_healthy()]
        deadline = datetime.now(UTC) + timedelta(seconds=90)
        while datetime.now(UTC) < deadline:
            reports = [first.health() or {}, second.health() or {}]
            owned = [len(r.get("partitions", [])) for r in reports]
            if sum(owned) == 3 and min(owned) >= 1:
                break
            time.sleep(0.5)
        env.replicas.extend([first, second])
        env.activate("pair", version, "FUTURE_ONLY")
        expected = stream_workload(env.feed, "r", 120)
        records = env.feed.enrollments(until=len(expected), quiet_s=4)
        assert people_of(records) == expected
        assert len({r["run_id"] for r in records}) == len(records)
        owned = [set((r.health() or {}).get("partitions", [])) for r in (first, second)]
        assert owned[0] and owned[1] and not owned[0] & owned[1]
    finally:
        first.stop()
        second.stop()
        await env.definitions.stop()
        delete_topics(settings)
