"""Batches: the write-behind tables and the order a batch ends in.

The exactly-once argument (`services.matcher.app`) rests on two things tested
here without a broker: a partition's writes reach RocksDB and the changelog only
at `write_out()`, once per key and in the order of their last write; and a batch
settles its enrollments before it writes out, and acknowledges its records only
after, and does neither when settling or writing out fails, but stops the worker.

The faust table is replaced at its seam by `FakeTable`: a real RocksDB database
(rocksdict, as faust opens it) and a producer that keeps what it is given.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from rocksdict import Options, Rdict

from services.matcher.batching import Batcher, BatchFailedError, OwnedPartition
from services.matcher.store import EMITTED_UP_TO
from services.matcher.tables import NAMESPACES, BufferedView, PartitionTables

TOPIC = "env.signalflow.matcher-emitted-changelog"


@dataclass
class Delivery:
    offset: int


@dataclass
class RecordingProducer:
    """Keeps what is sent; every record is delivered at once, numbered, unless
    `refuses` names an error the broker answers with."""

    sent: list[tuple[str, bytes, bytes | None, int]] = field(default_factory=list)
    refuses: Exception | None = None

    async def send(
        self,
        topic: str,
        key: bytes,
        value: bytes | None,
        partition: int,
        timestamp: float | None,
        headers: Any,
    ) -> asyncio.Future[Delivery]:
        self.sent.append((topic, key, value, partition))
        delivered: asyncio.Future[Delivery] = asyncio.get_running_loop().create_future()
        if self.refuses is not None:
            delivered.set_exception(self.refuses)
        else:
            delivered.set_result(Delivery(len(self.sent) - 1))
        return delivered


class FakeStore:
    def __init__(self, path: Path) -> None:
        self.database = Rdict(str(path), Options(raw_mode=True))
        self.persisted: dict[Any, int] = {}

    def _db_for_partition(self, partition: int) -> Rdict:
        return self.database

    def set_persisted_offset(self, tp: Any, offset: int) -> None:
        self.persisted[tp] = offset


class FakeChangelog:
    def get_topic_name(self) -> str:
        return TOPIC


@dataclass
class FakeApp:
    producer: RecordingProducer


class FakeTable:
    """A faust table as `BufferedView` uses it."""

    def __init__(self, path: Path, producer: RecordingProducer) -> None:
        self.data = FakeStore(path)
        self.changelog_topic = FakeChangelog()
        self.app = FakeApp(producer)


@pytest.fixture
def producer() -> RecordingProducer:
    return RecordingProducer()


@pytest.fixture
def table(tmp_path: Path, producer: RecordingProducer) -> Iterator[FakeTable]:
    made = FakeTable(tmp_path / "emitted-2.db", producer)
    yield made
    made.data.database.close()


def stored(table: FakeTable) -> dict[bytes, bytes]:
    return {
        key: value
        for key, value in table.data.database.items()
        if not key.startswith(b"__faust")
    }


async def test_writes_wait_in_memory_until_written_out(
    table: FakeTable, producer: RecordingProducer
) -> None:
    view = BufferedView(table, 2, cache_entries=100)  # type: ignore[arg-type]
    view.put("run-a", -1)
    view.put("run-b", -1)
    assert view.get("run-a") == -1
    assert stored(table) == {}
    assert producer.sent == []

    view.put("run-a", 7)
    view.put("run-b", 8)
    view.put(EMITTED_UP_TO, 8)
    assert await view.write_out() == 3

    assert stored(table) == {b"run-a": b"7", b"run-b": b"8", b"~up-to": b"8"}
    # One changelog record per key, in the order of the last writes, so the
    # marker follows the run ids it covers; all to the view's partition.
    assert [(key, value) for _, key, value, _ in producer.sent] == [
        (b"run-a", b"7"),
        (b"run-b", b"8"),
        (b"~up-to", b"8"),
    ]
    assert {partition for *_, partition in producer.sent} == {2}
    assert list(table.data.persisted.values()) == [2]
    assert await view.write_out() == 0
    assert len(producer.sent) == 3


async def test_a_changelog_record_the_broker_refuses_fails_the_write_out(
    table: FakeTable, producer: RecordingProducer
) -> None:
    view = BufferedView(table, 2, cache_entries=100)  # type: ignore[arg-type]
    view.put("run-a", 7)
    producer.refuses = RuntimeError("KafkaTimeoutError: the record expired")

    with pytest.raises(RuntimeError, match="expired"):
        await view.write_out()
    # RocksDB has the write and reads agree with it; the changelog offset the
    # table reached is not moved on.
    assert stored(table) == {b"run-a": b"7"}
    assert view.get("run-a") == 7
    assert table.data.persisted == {}


async def test_deletes_are_tombstones_and_scans_see_what_waits(
    table: FakeTable, producer: RecordingProducer
) -> None:
    view = BufferedView(table, 0, cache_entries=100)  # type: ignore[arg-type]
    for key in ("p|a", "p|b", "p|c", "q|a"):
        view.put(key, {"k": key})
    await view.write_out()

    view.delete("p|b")
    view.delete("p|missing")  # nothing there: nothing to write
    view.put("p|d", {"k": "p|d"})
    view.put("p|a", {"k": "changed"})
    assert list(view.scan("p|")) == [
        ("p|a", {"k": "changed"}),
        ("p|c", {"k": "p|c"}),
        ("p|d", {"k": "p|d"}),
    ]
    assert view.get("p|b") is None

    sent_before = len(producer.sent)
    assert await view.write_out() == 3
    assert producer.sent[sent_before:] == [
        (TOPIC, b"p|b", None, 0),
        (TOPIC, b"p|d", b'{"k":"p|d"}', 0),
        (TOPIC, b"p|a", b'{"k":"changed"}', 0),
    ]
    assert b"p|b" not in stored(table)
    fresh = BufferedView(table, 0, cache_entries=0)  # type: ignore[arg-type]
    assert [key for key, _ in fresh.scan("p|")] == ["p|a", "p|c", "p|d"]


async def test_reads_come_from_the_database_once_the_cache_lets_them_go(
    table: FakeTable,
) -> None:
    view = BufferedView(table, 0, cache_entries=10)  # type: ignore[arg-type]
    for index in range(50):
        view.put(f"k{index:02d}", index)
    await view.write_out()
    assert [view.get(f"k{index:02d}") for index in range(50)] == list(range(50))
    assert view.get("absent") is None


def test_partition_tables_hold_every_namespace(tmp_path: Path) -> None:
    producer = RecordingProducer()
    tables = {name: FakeTable(tmp_path / f"{name}.db", producer) for name in NAMESPACES}
    try:
        partition = PartitionTables(tables, 1, cache_entries=10)  # type: ignore[arg-type]
        partition.state.people.put("ann", {"profile": None})
        partition.state.emitted.put("run", 3)
        assert partition.pending_writes == 2
    finally:
        for table in tables.values():
            table.data.database.close()


# --- the order a batch ends in -------------------------------------------------


@dataclass
class Journal:
    steps: list[str] = field(default_factory=list)


@dataclass
class FakeMatcher:
    journal: Journal
    partition: int
    fails: bool = False
    released: bool = False

    async def settle(self) -> int:
        if self.fails:
            raise RuntimeError("the broker refused an enrollment")
        self.journal.steps.append(f"settle {self.partition}")
        return 1

    def release_all(self) -> None:
        self.released = True


@dataclass
class FakeTables:
    journal: Journal
    partition: int

    async def write_out(self) -> int:
        self.journal.steps.append(f"write {self.partition}")
        return 1


@dataclass
class Message:
    topic: str


@dataclass
class Event:
    message: Message
    name: str


def owned(journal: Journal, partition: int, *, fails: bool = False) -> OwnedPartition:
    return OwnedPartition(
        FakeMatcher(journal, partition, fails=fails),  # type: ignore[arg-type]
        FakeTables(journal, partition),  # type: ignore[arg-type]
    )


def batcher_for(journal: Journal, *, max_records: int = 100) -> Batcher:
    async def deliver() -> None:
        journal.steps.append("deliver")

    def stop(error: BaseException) -> None:
        journal.steps.append(f"stop: {error}")

    batcher = Batcher(
        interval_s=60.0,
        max_records=max_records,
        name_of=lambda topic: topic,
        deliver=deliver,
        stop=stop,
    )

    async def acknowledge(event: Event) -> None:
        journal.steps.append(f"ack {event.name}")

    batcher.acknowledge = acknowledge
    return batcher


async def test_a_batch_settles_then_writes_out_then_acknowledges() -> None:
    journal = Journal()
    batcher = batcher_for(journal)
    first, second = owned(journal, 0), owned(journal, 1)
    batcher.partitions.update({0: first, 1: second})
    async with batcher.lock:
        batcher.hold(first, Event(Message("signals"), "s1"), command=False)
        batcher.hold(second, Event(Message("signals"), "s2"), command=False)
        batcher.hold(first, Event(Message("profiles"), "p1"), command=False)

    assert await batcher.flush() == 3
    assert journal.steps == [
        "settle 0",
        "settle 1",
        "write 0",
        "write 1",
        "ack s1",
        "ack p1",
        "ack s2",
    ]
    assert batcher.done == {"signals": 2, "profiles": 1}
    assert await batcher.flush() == 0


async def test_a_batch_that_cannot_settle_writes_and_acknowledges_nothing() -> None:
    journal = Journal()
    batcher = batcher_for(journal)
    good, bad = owned(journal, 0), owned(journal, 1, fails=True)
    batcher.partitions.update({0: good, 1: bad})
    async with batcher.lock:
        batcher.hold(good, Event(Message("signals"), "s1"), command=False)
        batcher.hold(bad, Event(Message("signals"), "s2"), command=False)

    with pytest.raises(RuntimeError, match="refused"):
        await batcher.flush()
    assert journal.steps == ["settle 0", "stop: the broker refused an enrollment"]
    assert batcher.done == {}

    # Were the worker still running, nothing it did next would be written out.
    bad.matcher.fails = False  # type: ignore[attr-defined]
    async with batcher.lock:
        batcher.hold(good, Event(Message("signals"), "s3"), command=False)
    with pytest.raises(BatchFailedError, match="refused an enrollment"):
        await batcher.flush()
    assert journal.steps == ["settle 0", "stop: the broker refused an enrollment"]
    assert batcher.done == {}


async def test_a_batch_ends_at_its_size_and_a_revoked_partition_is_forgotten() -> None:
    journal = Journal()
    batcher = batcher_for(journal, max_records=2)
    first, second = owned(journal, 0), owned(journal, 1)
    batcher.partitions.update({0: first, 1: second})
    assert not batcher.due()
    batcher.hold(first, Event(Message("signals"), "s1"), command=False)
    assert not batcher.due()
    batcher.hold(second, Event(Message("signals"), "s2"), command=False)
    assert batcher.due()

    batcher.drop(1)
    assert second.matcher.released  # type: ignore[attr-defined]
    assert await batcher.flush() == 1
    assert journal.steps == ["settle 0", "write 0", "ack s1"]


async def test_commands_and_other_records_never_share_a_batch() -> None:
    journal = Journal()
    batcher = batcher_for(journal)
    first = owned(journal, 0)
    batcher.partitions[0] = first
    assert not batcher.crosses(command=True)
    batcher.hold(first, Event(Message("signals"), "s1"), command=False)
    assert not batcher.crosses(command=False)
    assert batcher.crosses(command=True)

    # The worker ends the batch, delivered, before the command.
    await batcher.flush(deliver=True)
    assert journal.steps == ["settle 0", "write 0", "deliver", "ack s1"]
    batcher.hold(first, Event(Message("control"), "c1"), command=True)
    batcher.hold(first, Event(Message("control"), "c2"), command=True)
    assert not batcher.crosses(command=True)
    assert batcher.crosses(command=False)


async def test_a_batch_ended_on_time_is_delivered_before_a_command() -> None:
    journal = Journal()
    batcher = batcher_for(journal)
    first = owned(journal, 0)
    batcher.partitions[0] = first
    batcher.hold(first, Event(Message("signals"), "s1"), command=False)
    assert await batcher.flush() == 1  # on time, not delivered
    assert not batcher.crosses(command=False)
    assert batcher.crosses(command=True)

    assert await batcher.flush(deliver=True) == 0
    assert journal.steps == ["settle 0", "write 0", "ack s1", "deliver"]
    assert not batcher.crosses(command=True)
    batcher.hold(first, Event(Message("control"), "c1"), command=True)
    assert batcher.crosses(command=False)
