"""The matcher's faust tables, one per namespace of `PartitionState`.

Tables live in RocksDB (faust's `rocksdb://` store; faust-streaming picks the
`rocksdict` binding for that URL when python-rocksdb is absent, as here: there is
no `rocksdict://` scheme) and every write also goes to the table's changelog topic.
Keys and values are bytes: keys are UTF-8 strings, values JSON.

`TableView` shows one partition of a table as a `KeyValue`. Faust stores and
changelogs a write in the partition of the record being processed, so a view may
only be used while a record of its own partition is processed; it checks that.
A partition's range scan reads the partition's RocksDB database directly: faust has
no per-partition iteration, and this is the one place that relies on its store's
layout.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import faust
from faust.streams import current_event
from faust.types import TableT

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


class WrongPartitionError(RuntimeError):
    """A table view was used while a record of another partition was processed.

    A bug in the matcher, never retried: the write would land in the wrong
    partition's store and changelog.
    """


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
    tables: dict[str, TableT[Any, Any]] = {}
    for name in NAMESPACES:
        table = app.Table(
            name,
            partitions=partitions,
            key_type=bytes,
            value_type=bytes,
            options=dict(ROCKSDB_OPTIONS),
        )
        table._verified_source_topics_for_partitions.update(sources)  # type: ignore[attr-defined]
        tables[name] = table
    return tables


def partition_state(
    tables: dict[str, TableT[Any, Any]], partition: int
) -> PartitionState:
    """The namespaces of one partition, over the worker's tables."""
    views = {name: TableView(tables[name], partition) for name in NAMESPACES}
    return PartitionState(**views)


class TableView:
    """One partition of a faust table as a `KeyValue` of JSON values."""

    def __init__(self, table: TableT[Any, Any], partition: int) -> None:
        self._table = table
        self._partition = partition

    def get(self, key: str) -> Any | None:
        self._check_partition()
        raw = self._table.get(key.encode())
        return None if raw is None else json.loads(raw)

    def put(self, key: str, value: Any) -> None:
        self._check_partition()
        self._table[key.encode()] = json.dumps(value, separators=(",", ":")).encode()

    def delete(self, key: str) -> None:
        self._check_partition()
        encoded = key.encode()
        if self._table.get(encoded) is not None:
            del self._table[encoded]

    def scan(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        self._check_partition()
        store: Any = self._table.data
        database = store._db_for_partition(self._partition)
        start = prefix.encode()
        for raw_key, raw_value in database.items(from_key=start):
            if raw_key == OFFSET_KEY:
                continue
            if not raw_key.startswith(start):
                break
            yield raw_key.decode(), json.loads(raw_value)

    def _check_partition(self) -> None:
        event = current_event()
        partition = event.message.partition if event is not None else None
        if partition != self._partition:
            raise WrongPartitionError(
                f"expected to process a record of partition {self._partition}, "
                f"got {partition!r}"
            )
