"""The matcher's state, one partition at a time, behind a small key-value seam.

`PartitionState` groups the namespaces the matcher keeps per partition. In the
worker each namespace is a faust table (RocksDB, changelog-backed) seen through
`services.matcher.tables.TableView`; the fast tests use `MemoryKeyValue`. Values
are JSON-able data.

Namespaces:

- `people`: person key -> `EntityState` data (profile, signal history, account);
- `accounts`: account key -> `EntityState` data;
- `members`: account key -> the person keys of the account;
- `enrolled`: `<workflow>|<person>` -> `{"g": enrollments so far, "t": last
  enrollment (ms), "b": inside a match that must not enroll (again)}`;
- `pending`: `<workflow>|<person>` -> `{"s": held since (ms), "a": account key}`;
- `emitted`: run id -> offset of the enrollment in the `enrollments` topic, and
  under `EMITTED_UP_TO` the highest offset whose run id is recorded (written
  after the run ids it covers, into the same changelog partition, so a replica
  that finds it also finds them);
- `timers`: due minute (zero-padded epoch minutes) -> person keys to look at again;
- `meta`: activations (`act:<workflow>`), run figures (`run:<workflow>`), account
  counts per run (`acap:<workflow>|<account>|<period>`), finished test runs
  (`test:<command>`), the timer cursor, and the profile with which a person this
  partition did not hold yet was passed on (`fwd:<person>`, until their handover
  from where they were arrives and is passed on after them).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

SEP = "|"
EMITTED_UP_TO = "~up-to"
"""The `emitted` key of the highest offset recorded (never a run id: a UUID)."""


class KeyValue(Protocol):
    """One namespace of one partition's state."""

    def get(self, key: str) -> Any | None:
        """The value at `key`, or None."""

    def put(self, key: str, value: Any) -> None:
        """Store `value` (JSON-able) at `key`. Within a partition's namespace,
        writes reach the changelog in the order of their last `put`."""

    def delete(self, key: str) -> None:
        """Remove `key`; nothing happens when it is absent."""

    def scan(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        """Every (key, value) whose key starts with `prefix`, in key order."""


@dataclass
class MemoryKeyValue:
    """A namespace held in a dict: the seam's stand-in for fast tests."""

    items: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str) -> Any | None:
        return self.items.get(key)

    def put(self, key: str, value: Any) -> None:
        self.items.pop(key, None)
        self.items[key] = value

    def delete(self, key: str) -> None:
        self.items.pop(key, None)

    def scan(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        for key in sorted(self.items):
            if key.startswith(prefix):
                yield key, self.items[key]


@dataclass
class PartitionState:
    """The namespaces of one partition."""

    people: KeyValue
    accounts: KeyValue
    members: KeyValue
    enrolled: KeyValue
    pending: KeyValue
    emitted: KeyValue
    timers: KeyValue
    meta: KeyValue

    @classmethod
    def in_memory(cls) -> PartitionState:
        return cls(*(MemoryKeyValue() for _ in range(8)))


def pair_key(workflow_id: str, person_key: str) -> str:
    return f"{workflow_id}{SEP}{person_key}"


def split_pair(key: str) -> tuple[str, str]:
    workflow_id, _, person_key = key.partition(SEP)
    return workflow_id, person_key
