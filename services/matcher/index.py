"""Which active workflows an event can concern: the audience index.

Each active workflow is compiled once (`ActiveWorkflow`). `AudienceIndex` maps the
keys an audience reads (`signal:funding`, `email`, `field:account.industry`, ...)
to the workflows that read them, so an event looks up only the workflows that read
one of the keys it changed: its cost does not grow with the workflows that ignore
it.

A second cut keeps the cost down when many audiences do read the key: an audience
that requires a signal (a company or person signal predicate directly under its
top-level `all`, or as the whole filter) is filed under that predicate's signal
types, its *anchor*. An event only looks at anchored audiences whose anchor the
prospect has, since the others cannot match. A prospect has a handful of signal
types, so this bucket lookup stays small however many audiences there are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.matcher.state import EVERYTHING
from signalflow.workflow import Audience, Workflow
from signalflow.workflow.evaluate import CompiledFilter, ProspectState, compile_filter
from signalflow.workflow.filters import (
    AllOf,
    CompanySignal,
    FilterNode,
    InAudience,
    LastActivity,
    PersonSignal,
)

Anchor = frozenset[str]
"""Signal types with their scope, `COMPANY:funding` or `PERSON:job_change`."""


@dataclass(frozen=True)
class ActiveWorkflow:
    """A workflow version with its audience, compiled for evaluation."""

    workflow: Workflow
    version: int
    audience: Audience
    compiled: CompiledFilter
    reads: frozenset[str]
    anchor: Anchor | None
    clock_sensitive: bool
    signal_types: tuple[tuple[str, str], ...]

    @property
    def id(self) -> str:
        return self.workflow.id

    @property
    def scheduled(self) -> bool:
        return self.workflow.schedule.kind != "realtime"

    def matches(self, state: ProspectState, now: datetime) -> bool:
        return self.compiled.matches(state, now)

    def next_change(self, state: ProspectState, now: datetime) -> datetime | None:
        """When the clock alone may flip the match, re-enrollment waits included."""
        if not self.clock_sensitive:
            return None
        return self.compiled.next_change(state, now)

    def reenroll_after(self) -> timedelta | None:
        days = self.workflow.reenrollment.after_days
        return timedelta(days=days) if days else None


def compile_workflow(
    workflow: Workflow,
    version: int,
    audience: Audience,
    audiences: Mapping[str, Audience],
) -> ActiveWorkflow:
    """Compile `workflow` (saved as `version`) against its audience.

    `audiences` resolves membership predicates (`in_audience`).
    """
    lookup = {**audiences, audience.id: audience}
    nodes = list(_expanded_nodes(audience.filter, lookup, set()))
    return ActiveWorkflow(
        workflow=workflow,
        version=version,
        audience=audience,
        compiled=compile_filter(audience.filter, lookup),
        reads=frozenset(audience.filter.reads(lookup)),
        anchor=_anchor(audience.filter),
        clock_sensitive=_clock_sensitive(nodes),
        signal_types=tuple(_signal_types(nodes)),
    )


def _expanded_nodes(
    node: FilterNode, audiences: Mapping[str, Audience], seen: set[str]
) -> Iterable[FilterNode]:
    for item in node.walk():
        yield item
        if isinstance(item, InAudience) and item.audience_id not in seen:
            target = audiences.get(item.audience_id)
            if target is not None:
                seen.add(item.audience_id)
                yield from _expanded_nodes(target.filter, audiences, seen)


def _clock_sensitive(nodes: list[FilterNode]) -> bool:
    for node in nodes:
        if isinstance(node, (CompanySignal, PersonSignal)) and node.within_days:
            return True
        if isinstance(node, LastActivity) and node.condition != "empty":
            return True
    return False


def _signal_types(nodes: list[FilterNode]) -> Iterable[tuple[str, str]]:
    seen: set[tuple[str, str]] = set()
    for node in nodes:
        if isinstance(node, (CompanySignal, PersonSignal)):
            scope = "COMPANY" if isinstance(node, CompanySignal) else "PERSON"
            for kind in node.types:
                if (scope, kind) not in seen:
                    seen.add((scope, kind))
                    yield scope, kind


def _anchor(root: FilterNode) -> Anchor | None:
    """The signal types one of which a prospect must have to match, if any.

    Person signals are preferred (people have fewer than accounts), then the
    predicate with the fewest types.
    """
    conjuncts = root.of if isinstance(root, AllOf) else [root]
    candidates = [
        node for node in conjuncts if isinstance(node, (CompanySignal, PersonSignal))
    ]
    if not candidates:
        return None
    best = min(
        candidates,
        key=lambda node: (isinstance(node, CompanySignal), len(node.types)),
    )
    scope = "COMPANY" if isinstance(best, CompanySignal) else "PERSON"
    return frozenset(f"{scope}:{kind}" for kind in best.types)


def present_anchors(state: ProspectState) -> set[str]:
    """The anchors a prospect satisfies: the signal types it has, with scope."""
    present = {f"PERSON:{kind}" for kind in state.person_signals}
    present.update(f"COMPANY:{kind}" for kind in state.account_signals)
    return present


@dataclass
class _Bucket:
    free: set[str] = field(default_factory=set)
    anchored: dict[str, set[str]] = field(default_factory=dict)


class AudienceIndex:
    """Event keys to the ids of the active workflows that read them.

    Not thread-safe; the matcher uses it from its event loop only.
    """

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._entries: dict[str, ActiveWorkflow] = {}
        self._clock_sensitive: set[str] = set()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, workflow_id: object) -> bool:
        return workflow_id in self._entries

    def get(self, workflow_id: str) -> ActiveWorkflow | None:
        return self._entries.get(workflow_id)

    def workflows(self) -> list[ActiveWorkflow]:
        return list(self._entries.values())

    def clock_sensitive(self) -> list[ActiveWorkflow]:
        """The workflows whose match can change with the clock alone."""
        return [self._entries[wid] for wid in sorted(self._clock_sensitive)]

    def add(self, active: ActiveWorkflow) -> None:
        """File `active` under the keys it reads, replacing an earlier version."""
        self.remove(active.id)
        self._entries[active.id] = active
        for key in (*active.reads, EVERYTHING):
            bucket = self._buckets.setdefault(key, _Bucket())
            if active.anchor is None:
                bucket.free.add(active.id)
                continue
            for anchor in active.anchor:
                bucket.anchored.setdefault(anchor, set()).add(active.id)
        if active.clock_sensitive or active.reenroll_after():
            self._clock_sensitive.add(active.id)

    def remove(self, workflow_id: str) -> None:
        """Forget a workflow; does nothing for an unknown id."""
        active = self._entries.pop(workflow_id, None)
        if active is None:
            return
        self._clock_sensitive.discard(workflow_id)
        for key in (*active.reads, EVERYTHING):
            bucket = self._buckets[key]
            bucket.free.discard(workflow_id)
            for anchor in active.anchor or ():
                members = bucket.anchored.get(anchor)
                if members is not None:
                    members.discard(workflow_id)
                    if not members:
                        del bucket.anchored[anchor]
            if not bucket.free and not bucket.anchored:
                del self._buckets[key]

    def candidates(self, keys: Iterable[str], anchors: set[str]) -> set[str]:
        """Ids of the workflows that read one of `keys` and whose anchor, if they
        have one, is among the prospect's `anchors`. The key `*` stands for every
        workflow."""
        found: set[str] = set()
        for key in keys:
            bucket = self._buckets.get(key)
            if bucket is None:
                continue
            found |= bucket.free
            if len(anchors) < len(bucket.anchored):
                for anchor in anchors:
                    members = bucket.anchored.get(anchor)
                    if members:
                        found |= members
            else:
                for anchor, members in bucket.anchored.items():
                    if anchor in anchors:
                        found |= members
        return found
