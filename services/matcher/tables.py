"""The matcher's faust tables, one per namespace of `PartitionState`, written behind.

Tables live in RocksDB (faust's `rocksdb://` store; faust-streaming picks the
`rocksdict` binding for that URL when python-rocksdb is absent, as here: there is
no `rocksdict://` scheme) and every write also goes to the table's changelog topic.
Keys and values are bytes: keys are UTF-8 strings, values JSON.

`PartitionTables` shows one partition of every table as a `PartitionState` whose
writes wait in memory (decoded) until `write_out()`, which writes each
namespace's changes as one RocksDB batch, sends one changelog record per changed
key, however often the key changed meanwhile, and waits until the broker
acknowledged them. Reads see the waiting changes first, then a bounded cache of
decoded values, then RocksDB. The worker calls `write_out()` only once the
enrollments sent meanwhile are acknowledged, and acknowledges the records to
faust only after it (see the argument in `services.matcher.app`).

A partition reads and writes its own RocksDB database directly and sends its
changelog records with an explicit partition, so no faust event context is
needed: faust keeps one database per table partition (`_db_for_partition`) and
has no per-partition iteration, and this is the one place that relies on its
store's layout. A `PartitionTables` may only be used while the worker owns the
partition; the worker drops it when the partition is revoked.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any, cast

import faust
from faust.types import TP, TableT
from rocksdict import WriteBatch

from services.matcher.store import PartitionState

NAMESPACES = (
    "people",
    "accounts",
    "members",
    "enrolled",
    "pending",
    "emitted",
    "timers",
    "meta",
)
OFFSET_KEY = b"__faust\0offset__"
# Faust's defaults give every partition database of every table a 2 GiB block
# cache and 64 MiB write buffers; eight tables times the partitions a replica owns
# make that far too much, and slow to open.
ROCKSDB_OPTIONS = {
    "block_cache_size": 32 * 1024**2,
    "write_buffer_size": 8 * 1024**2,
    "target_file_size_base": 16 * 1024**2,
}

_DELETED = object()
_ABSENT = object()
_MISSING = object()


def make_tables(
    app: faust.App, *, partitions: int, sources: Iterable[str]
) -> dict[str, TableT[Any, Any]]:
    """Declare one table per namespace, with `partitions` changelog partitions.

    `sources` are the topics whose records write the tables. Their partition
    counts are checked against `partitions` before the worker starts
    (`main.ensure_internal_topics`), so faust's own check at the first write is
    skipped: right after a restart it can read a changelog topic's partition
    count from metadata that does not list the topic yet, see it as 0, and crash
    the agent on every record.
    """
    return {name: _table(app, name, partitions, sources) for name in NAMESPACES}


def make_homes_table(
    app: faust.App, *, partitions: int, source: str
) -> TableT[Any, Any]:
    """Declare the repartitioner's table of where each person's state lives
    (person key -> JSON `services.matcher.routing` home), written from `source`
    (the profiles topic), whose partition count is checked like the others'."""
    return _table(app, "homes", partitions, [source])


def _table(
    app: faust.App, name: str, partitions: int, sources: Iterable[str]
) -> TableT[Any, Any]:
    table = app.Table(
        name,
        partitions=partitions,
        key_type=bytes,
        value_type=bytes,
        options=dict(ROCKSDB_OPTIONS),
    )
    # Faust keeps the topics it has checked in a private set (see `make_tables`).
    cast(Any, table)._verified_source_topics_for_partitions.update(sources)
    return table


class PartitionTables:
    """One partition of every table, its writes held until `write_out()`.

    Args:
        tables: the worker's tables by namespace.
        partition: the partition number.
        cache_entries: how many decoded values each namespace keeps for reading
            again (the oldest go first).
    """

    def __init__(
        self,
        tables: dict[str, TableT[Any, Any]],
        partition: int,
        *,
        cache_entries: int,
    ) -> None:
        self.partition = partition
        self._views = {
            name: BufferedView(tables[name], partition, cache_entries=cache_entries)
            for name in NAMESPACES
        }
        self.state = PartitionState(**self._views)

    @property
    def pending_writes(self) -> int:
        """How many keys have changes not written out yet."""
        return sum(view.pending_writes for view in self._views.values())

    async def write_out(self) -> int:
        """Write every waiting change to RocksDB, send it to the changelog and
        wait until the broker acknowledged it all. Returns how many keys were
        written.

        Raises what the producer raises for a changelog record the broker did
        not take: RocksDB then holds writes the changelog lacks, and the worker
        stops (`services.matcher.batching`).
        """
        views = self._views.values()
        return sum(await asyncio.gather(*(view.write_out() for view in views)))


class BufferedView:
    """One partition of one table as a `KeyValue` of JSON values, written behind."""

    def __init__(
        self, table: TableT[Any, Any], partition: int, *, cache_entries: int
    ) -> None:
        self._table = table
        self._partition = partition
        self._cache_entries = cache_entries
        self._dirty: dict[str, Any] = {}
        self._clean: dict[str, Any] = {}

    @property
    def pending_writes(self) -> int:
        return len(self._dirty)

    def get(self, key: str) -> Any | None:
        value = self._dirty.get(key, _MISSING)
        if value is _MISSING:
            value = self._clean.get(key, _MISSING)
        if value is _MISSING:
            raw = self._database().get(key.encode())
            value = _ABSENT if raw is None else json.loads(raw)
            self._remember(key, value)
        return None if value is _DELETED or value is _ABSENT else value

    def put(self, key: str, value: Any) -> None:
        # Moved to the end: the changelog gets the keys in the order of their
        # last write (see `store.EMITTED_UP_TO`).
        self._dirty.pop(key, None)
        self._dirty[key] = value

    def delete(self, key: str) -> None:
        if self.get(key) is not None:
            self._dirty.pop(key, None)
            self._dirty[key] = _DELETED

    def scan(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        """The keys starting with `prefix` in key order, changes included; read
        at once, so the caller may write while it iterates."""
        found: dict[str, Any] = {}
        start = prefix.encode()
        for raw_key, raw_value in self._database().items(from_key=start):
            if raw_key == OFFSET_KEY:
                continue
            if not raw_key.startswith(start):
                break
            key = raw_key.decode()
            cached = self._clean.get(key, _MISSING)
            found[key] = json.loads(raw_value) if cached is _MISSING else cached
        for key, value in self._dirty.items():
            if not key.startswith(prefix):
                continue
            if value is _DELETED:
                found.pop(key, None)
            else:
                found[key] = value
        return iter(sorted(found.items()))

    async def write_out(self) -> int:
        """Write the changes as one RocksDB batch, send them to the changelog and
        wait until the broker acknowledged them; returns how many keys changed.

        The records go straight to the producer with an explicit partition, past
        faust's buffer and per-message topic machinery, so no event context is
        needed. The changelog records of one key keep their order: one
        partition, one producer. Raises what the producer raises for a record
        the broker did not take.
        """
        if not self._dirty:
            return 0
        changes, self._dirty = self._dirty, {}
        encoded = [(key.encode(), _encode(value)) for key, value in changes.items()]
        batch = WriteBatch(raw_mode=True)
        for raw_key, raw_value in encoded:
            if raw_value is None:
                batch.delete(raw_key)
            else:
                batch.put(raw_key, raw_value)
        self._database().write(batch)
        for key, value in changes.items():
            self._remember(key, _ABSENT if value is _DELETED else value)
        table: Any = self._table
        tp = TP(table.changelog_topic.get_topic_name(), self._partition)
        producer = table.app.producer
        sent = [
            await producer.send(tp.topic, key, value, tp.partition, None, None)
            for key, value in encoded
        ]
        delivered = await asyncio.gather(*sent)
        # As faust's own table writes do: its recovery after a clean restart reads
        # the changelog on from the offset recorded here.
        table.data.set_persisted_offset(tp, delivered[-1].offset)
        return len(encoded)

    def _remember(self, key: str, value: Any) -> None:
        clean = self._clean
        clean.pop(key, None)
        clean[key] = value
        excess = len(clean) - self._cache_entries
        if excess > 0:
            # Evict a tenth at a time, so eviction is not paid on every read.
            for old in list(islice(clean, excess + self._cache_entries // 10)):
                del clean[old]

    def _database(self) -> Any:
        store: Any = self._table.data
        return store._db_for_partition(self._partition)


def _encode(value: Any) -> bytes | None:
    if value is _DELETED:
        return None
    return json.dumps(value, separators=(",", ":")).encode()
