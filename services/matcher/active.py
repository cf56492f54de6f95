"""An active workflow version, compiled once for the matcher's hot path.

`compile_workflow()` turns a workflow and its audience into an `ActiveWorkflow`:
the audience filter compiled into closures (`signalflow.workflow.evaluate`), the
state keys it reads and its anchors (for `services.matcher.index`), and, when
its answer can change with the clock alone, the same filter split so that
`judge()` asks `next_change` only when the clock could matter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from services.matcher.anchors import Dimension, dimensions
from signalflow.workflow import Audience, Workflow
from signalflow.workflow.evaluate import CompiledFilter, ProspectState, compile_filter
from signalflow.workflow.filters import (
    AllOf,
    CompanySignal,
    Filter,
    FilterNode,
    InAudience,
    LastActivity,
    PersonSignal,
)


@dataclass(frozen=True)
class ClockParts:
    """An audience split for `next_change`: the conjuncts the clock cannot change
    (`steady`, None when there are none) and the others (`timed`)."""

    steady: CompiledFilter | None
    timed: CompiledFilter


@dataclass(frozen=True)
class ActiveWorkflow:
    """A workflow version with its audience, compiled for evaluation.

    `anchors` are the dimensions a prospect must satisfy to match, most
    selective first (`services.matcher.anchors`); `clock_parts` is set when the
    clock alone can change the answer.
    """

    workflow: Workflow
    version: int
    audience: Audience
    compiled: CompiledFilter
    reads: frozenset[str]
    anchors: tuple[Dimension, ...]
    signal_types: tuple[tuple[str, str], ...]
    clock_parts: ClockParts | None = None

    @property
    def id(self) -> str:
        return self.workflow.id

    @cached_property
    def scheduled(self) -> bool:
        return self.workflow.schedule.kind != "realtime"

    @property
    def clock_sensitive(self) -> bool:
        """Whether a predicate of the audience can change with the clock alone."""
        return self.clock_parts is not None

    def matches(self, state: ProspectState, now: datetime) -> bool:
        return self.compiled.matches(state, now)

    def judge(
        self, state: ProspectState, now: datetime
    ) -> tuple[bool, datetime | None]:
        """Whether the prospect matches now, and when the clock alone may flip it
        (None when it cannot).

        The clock cannot flip a match that a conjunct independent of the clock
        fails: only an event can change that conjunct, and an event is evaluated
        anyway. Such conjuncts are tried first, so most prospects cost one pass
        over the cheap part of the filter.
        """
        parts = self.clock_parts
        if parts is None:
            return self.compiled.matches(state, now), None
        if parts.steady is not None and not parts.steady.matches(state, now):
            return False, None
        return parts.timed.matches(state, now), parts.timed.next_change(state, now)

    def admits(self, keys: Mapping[str, Sequence[str]]) -> bool:
        """Whether a prospect with these anchor keys (by dimension kind) has every
        anchor; one without cannot match."""
        for dimension in self.anchors:
            present = keys.get(dimension.kind)
            if not present or dimension.keys.isdisjoint(present):
                return False
        return True

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
    clock_sensitive = _clock_sensitive(nodes)
    return ActiveWorkflow(
        workflow=workflow,
        version=version,
        audience=audience,
        compiled=compile_filter(audience.filter, lookup),
        reads=frozenset(audience.filter.reads(lookup)),
        anchors=dimensions(audience.filter),
        signal_types=tuple(_signal_types(nodes)),
        clock_parts=_clock_parts(audience.filter, lookup) if clock_sensitive else None,
    )


def _clock_parts(root: FilterNode, audiences: Mapping[str, Audience]) -> ClockParts:
    """Split a top-level `all` into the conjuncts the clock can change and the
    others; any other root is timed as a whole."""
    if not isinstance(root, AllOf):
        return ClockParts(steady=None, timed=compile_filter(root, audiences))
    steady: list[Filter] = []
    timed: list[Filter] = []
    for part in root.of:
        nodes = list(_expanded_nodes(part, audiences, set()))
        (timed if _clock_sensitive(nodes) else steady).append(part)
    return ClockParts(
        steady=compile_filter(AllOf(of=steady), audiences) if steady else None,
        timed=compile_filter(AllOf(of=timed), audiences),
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
