"""Which active workflows an event can concern: the audience index.

`AudienceIndex` maps the keys an audience reads (`signal:funding`, `email`,
`field:account.industry`, ...) to the workflows that read them, so an event looks
up only the workflows that read one of the keys it changed: its cost does not
grow with the workflows that ignore it.

A second cut keeps the cost down when many audiences do read the key: a signal of
one type concerns every audience that wants that type, and there are many. Within
a key, each workflow is filed under its *anchors* (`services.matcher.anchors`):
the discrete facts a prospect must have to match, such as one of two titles, or
one of the signal types it wants. A workflow is filed under every combination of
the keys of two of its dimensions (its best field and its best signal dimension
when it has both), and a prospect looks up the combinations of its own keys (one
value per field, a handful of signal types), so the workflows it finds are those
that can match it, however many audiences read the changed key.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any

from services.matcher.active import ActiveWorkflow
from services.matcher.anchors import (
    Dimension,
    Field,
    Keys,
    account_keys,
    person_keys,
    prospect_keys,
)
from services.matcher.state import EVERYTHING
from signalflow.workflow.evaluate import ProspectState

MAX_COMBINATIONS = 64
"""A workflow whose two best dimensions have more combinations than this is filed
under its best dimension alone."""

Shape = tuple[str, ...]
"""The dimension kinds a workflow is filed under, `("person.title", "PERSON")`."""


@dataclass
class _Bucket:
    free: set[str] = field(default_factory=set)
    filed: dict[tuple[str, ...], set[str]] = field(default_factory=dict)
    shapes: Counter[Shape] = field(default_factory=Counter)


Requirement = tuple[str, frozenset[str]]
"""A dimension as the lookup checks it: its kind and its keys."""


@dataclass(frozen=True)
class _Filing:
    """Where a workflow is filed (`shape`, `combinations`) and the dimensions a
    prospect found there must still have (`rest`)."""

    shape: Shape
    combinations: tuple[tuple[str, ...], ...]
    rest: tuple[Requirement, ...]


def _filing(anchors: Sequence[Dimension]) -> _Filing:
    chosen = list(anchors[:2])
    if len(chosen) == 2 and len(chosen[0].keys) * len(chosen[1].keys) > (
        MAX_COMBINATIONS
    ):
        chosen = chosen[:1]
    return _Filing(
        shape=tuple(dimension.kind for dimension in chosen),
        combinations=tuple(product(*(sorted(d.keys) for d in chosen))),
        rest=tuple((d.kind, d.keys) for d in anchors[len(chosen) :]),
    )


def _has_all(
    rest: tuple[Requirement, ...], anchors: Mapping[str, Sequence[str]]
) -> bool:
    for kind, keys in rest:
        present = anchors.get(kind)
        if not present or keys.isdisjoint(present):
            return False
    return True


class AudienceIndex:
    """Event keys and prospect anchors to the ids of the active workflows.

    Not thread-safe; the matcher uses it from its event loop only.
    """

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._entries: dict[str, ActiveWorkflow] = {}
        self._clock_sensitive: set[str] = set()
        self._fields: Counter[Field] = Counter()
        self._rest: dict[str, tuple[Requirement, ...]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, workflow_id: object) -> bool:
        return workflow_id in self._entries

    def get(self, workflow_id: str) -> ActiveWorkflow | None:
        return self._entries.get(workflow_id)

    def workflows(self) -> list[ActiveWorkflow]:
        return list(self._entries.values())

    def clock_sensitive(self) -> list[ActiveWorkflow]:
        """The workflows whose match, or whose re-enrollment, can change with the
        clock alone."""
        return [self._entries[wid] for wid in sorted(self._clock_sensitive)]

    def add(self, active: ActiveWorkflow) -> None:
        """File `active` under the keys it reads, replacing an earlier version."""
        self.remove(active.id)
        self._entries[active.id] = active
        filing = _filing(active.anchors)
        self._rest[active.id] = filing.rest
        for key in (*active.reads, EVERYTHING):
            bucket = self._buckets.setdefault(key, _Bucket())
            if not filing.shape:
                bucket.free.add(active.id)
                continue
            bucket.shapes[filing.shape] += 1
            for combination in filing.combinations:
                bucket.filed.setdefault(combination, set()).add(active.id)
        self._fields.update(d.field for d in active.anchors if d.field is not None)
        if active.clock_sensitive or active.reenroll_after():
            self._clock_sensitive.add(active.id)

    def remove(self, workflow_id: str) -> None:
        """Forget a workflow; does nothing for an unknown id."""
        active = self._entries.pop(workflow_id, None)
        if active is None:
            return
        self._clock_sensitive.discard(workflow_id)
        del self._rest[workflow_id]
        self._fields.subtract(d.field for d in active.anchors if d.field is not None)
        self._fields = +self._fields
        filing = _filing(active.anchors)
        for key in (*active.reads, EVERYTHING):
            bucket = self._buckets[key]
            bucket.free.discard(workflow_id)
            if filing.shape:
                bucket.shapes[filing.shape] -= 1
                bucket.shapes = +bucket.shapes
            for combination in filing.combinations:
                members = bucket.filed.get(combination)
                if members is not None:
                    members.discard(workflow_id)
                    if not members:
                        del bucket.filed[combination]
            if not bucket.free and not bucket.filed:
                del self._buckets[key]

    def reads_any(self, keys: Iterable[str]) -> bool:
        """Whether some workflow reads one of `keys` (`*`: whether there is any)."""
        return any(key in self._buckets for key in keys)

    def keys_of(self, state: ProspectState) -> Keys:
        """The prospect's anchor keys, for every field some workflow is anchored
        on (see `services.matcher.anchors.prospect_keys`)."""
        return prospect_keys(state, self._fields)

    def person_keys_of(
        self, profile: Mapping[str, Any], signal_types: Iterable[str], account: Keys
    ) -> Keys:
        """A person's anchor keys, from their profile, the signal types they have
        and their account's keys (`account_keys_of`)."""
        return person_keys(profile, signal_types, self._fields, account=account)

    def account_keys_of(
        self, profile: Mapping[str, Any] | None, signal_types: Iterable[str]
    ) -> Keys:
        """The anchor keys an account gives everyone at it."""
        return account_keys(profile, signal_types, self._fields)

    def candidates(
        self, keys: Iterable[str], anchors: Mapping[str, Sequence[str]]
    ) -> set[str]:
        """Ids of the workflows that read one of `keys` and whose every anchor a
        prospect with `anchors` (from `keys_of`) has: those it may match. The
        key `*` stands for every workflow."""
        found: set[str] = set()
        rest = self._rest
        for key in keys:
            bucket = self._buckets.get(key)
            if bucket is None:
                continue
            found |= bucket.free
            filed = bucket.filed
            for shape in bucket.shapes:
                present = [anchors.get(kind) for kind in shape]
                if not all(present):
                    continue
                for combination in product(*present):  # type: ignore[arg-type]
                    for workflow_id in filed.get(combination, ()):
                        if workflow_id not in found and _has_all(
                            rest[workflow_id], anchors
                        ):
                            found.add(workflow_id)
        return found
