"""Evaluating audience filters against one prospect's current state.

The matcher keeps, per person and per account, the latest profile and one
`SignalFact` per signal type, and calls `compile_filter()` once per audience
version: the result is a tree of closures whose `matches(state, now)` costs a few
microseconds. `evaluate()` gives the same answer with an explanation (each
predicate, whether it held, and the values it read), which the enrollment
carries. `next_change()` says when the clock alone could flip the answer, so the
matcher can look again then. The dispatcher evaluates branch conditions with
`evaluate()` on `state_from_enrollment()`.

Time rules (the same in every function here):

- "within the last N days" holds while `now < at + N days`;
- "before N days ago" holds from `now >= at + N days` on;
- "before N months ago" holds from `months_elapsed_at(at, N)` on: the same day
  and time N calendar months later, or the first instant of the month after that
  when it is too short (31 August plus six months is reached on 1 March);
- a signal, or an activity, dated in the future counts as within any window.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from signalflow.workflow.clock import (
    as_utc,
    months_elapsed_at,
    months_reached,
    parse_when,
)
from signalflow.workflow.filters import (
    AllOf,
    AnyOf,
    CompanySignal,
    FieldComparison,
    FilterNode,
    HasEmail,
    InAudience,
    LastActivity,
    Not,
    PersonSignal,
)

if TYPE_CHECKING:
    from signalflow.workflow.workflow import Audience

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class SignalFact:
    """The latest signal of one type for a person or an account, and how many."""

    type: str
    last_at: datetime
    count: int = 1
    last_signal_id: str = ""
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ProspectState:
    """What the matcher knows about one person and their account.

    `person` and `account` are profile records (`schemas/profile`): `key`,
    `email`, `owner`, `past_owners`, `last_activity_at` (a datetime or epoch
    milliseconds) and `fields`. Signal facts are keyed by signal type.
    """

    person: Mapping[str, Any]
    account: Mapping[str, Any] | None = None
    person_signals: Mapping[str, SignalFact] = field(default_factory=dict)
    account_signals: Mapping[str, SignalFact] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PredicateOutcome:
    """One predicate's result: readable text, whether it held, what it read."""

    predicate: str
    held: bool
    values: dict[str, str]

    def as_record(self) -> dict[str, Any]:
        """The `PredicateOutcome` record of `schemas/enrollment`."""
        return {"predicate": self.predicate, "held": self.held, "values": self.values}


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Whether a prospect matched, and the outcome of every predicate evaluated."""

    matched: bool
    outcomes: tuple[PredicateOutcome, ...]

    def explanation(self) -> list[dict[str, Any]]:
        """The enrollment's `explanation` field."""
        return [outcome.as_record() for outcome in self.outcomes]

    def held(self) -> list[PredicateOutcome]:
        return [outcome for outcome in self.outcomes if outcome.held]


Predicate = Callable[[ProspectState, datetime], bool]


class CompiledFilter:
    """A filter turned into closures, for the matcher's hot path.

    Membership predicates are compiled in, from the `audiences` given at compile
    time; compile again when one of them changes (`reads()` of the audience says
    which ones it depends on, `audience:<id>` included).
    """

    def __init__(
        self, node: FilterNode, audiences: Mapping[str, Audience] | None = None
    ) -> None:
        self.node = node
        self.audiences: Mapping[str, Audience] = audiences or {}
        self._predicate = _Compiler(self.audiences).compile(node, frozenset())

    def matches(self, state: ProspectState, now: datetime) -> bool:
        """Whether the prospect matches at `now` (an aware datetime)."""
        return self._predicate(state, now)

    def explain(self, state: ProspectState, now: datetime) -> Evaluation:
        return evaluate(self.node, state, now=now, audiences=self.audiences)

    def next_change(self, state: ProspectState, now: datetime) -> datetime | None:
        return next_change(self.node, state, now=now, audiences=self.audiences)


def compile_filter(
    node: FilterNode, audiences: Mapping[str, Audience] | None = None
) -> CompiledFilter:
    """Compile a filter once; see `CompiledFilter`."""
    return CompiledFilter(node, audiences)


# --- compiled evaluation ---------------------------------------------------------


class _Compiler:
    def __init__(self, audiences: Mapping[str, Audience]) -> None:
        self.audiences = audiences

    def compile(self, node: FilterNode, within: frozenset[str]) -> Predicate:
        if isinstance(node, (AllOf, AnyOf)):
            return self._group(node, within)
        if isinstance(node, Not):
            inner = self.compile(node.filter, within)
            return lambda state, now: not inner(state, now)
        if isinstance(node, InAudience):
            return self._membership(node, within)
        return _leaf(node)

    def _group(self, node: AllOf | AnyOf, within: frozenset[str]) -> Predicate:
        parts = tuple(self.compile(child, within) for child in node.of)
        if isinstance(node, AllOf):
            # Plain loops: measurably faster than all()/any() over a generator.
            def every(state: ProspectState, now: datetime) -> bool:
                for part in parts:  # noqa: SIM110
                    if not part(state, now):
                        return False
                return True

            return every

        def some(state: ProspectState, now: datetime) -> bool:
            for part in parts:  # noqa: SIM110
                if part(state, now):
                    return True
            return False

        return some

    def _membership(self, node: InAudience, within: frozenset[str]) -> Predicate:
        target = self.audiences.get(node.audience_id)
        if target is None or node.audience_id in within:
            # Saving rejects both; a stale lookup must not crash the matcher.
            logger.warning(
                "audience %s is unknown or contains itself; it matches no one",
                node.audience_id,
            )
            return lambda state, now: False
        return self.compile(target.filter, within | {node.audience_id})


def _leaf(node: FilterNode) -> Predicate:
    if isinstance(node, (CompanySignal, PersonSignal)):
        return _signal_predicate(node)
    if isinstance(node, HasEmail):
        wanted = node.value
        return lambda state, now: bool(state.person.get("email")) is wanted
    if isinstance(node, LastActivity):
        return _activity_predicate(node)
    if isinstance(node, FieldComparison):
        return _comparison_predicate(node)
    raise TypeError(f"expected a filter predicate, got {node!r}")


def _signal_predicate(node: CompanySignal | PersonSignal) -> Predicate:
    types = tuple(node.types)
    account = isinstance(node, CompanySignal)
    window = timedelta(days=node.within_days) if node.within_days else None

    def holds(state: ProspectState, now: datetime) -> bool:
        facts = state.account_signals if account else state.person_signals
        for name in types:
            fact = facts.get(name)
            if fact is not None and (window is None or now < fact.last_at + window):
                return True
        return False

    return holds


def _activity_predicate(node: LastActivity) -> Predicate:
    condition, or_empty, months = node.condition, node.or_empty, node.months
    span = timedelta(days=node.days or 0)

    def holds(state: ProspectState, now: datetime) -> bool:
        last = as_utc(state.person.get("last_activity_at"))
        if last is None:
            return condition == "empty" or or_empty
        if condition == "empty":
            return False
        if condition == "within":
            return now < last + span
        if months:
            return months_reached(last, now, months)
        return now >= last + span

    return holds


def _comparison_predicate(node: FieldComparison) -> Predicate:
    scope, name = node.object, node.field
    test = _comparison(node)

    def holds(state: ProspectState, now: datetime) -> bool:
        record = state.person if scope == "person" else state.account
        return test(field_value(record, name))

    return holds


def field_value(record: Mapping[str, Any] | None, name: str) -> Any:
    """A field of a profile record: the `fields` map first, then the record's
    own keys (`email`, `owner`, ...)."""
    if record is None:
        return None
    fields = record.get("fields")
    if fields and name in fields:
        return fields[name]
    return record.get(name)


def _comparison(node: FieldComparison) -> Callable[[Any], bool]:
    op, value = node.op, node.value
    if op == "exists":
        return lambda actual: actual not in (None, "", [])
    if op in ("eq", "ne"):
        wanted = _normal(value)
        if op == "eq":
            return lambda actual: _normal(actual) == wanted
        return lambda actual: _normal(actual) != wanted
    if op == "in":
        options = frozenset(_normal(item) for item in value)  # type: ignore[union-attr]
        return lambda actual: _normal(actual) in options
    if op == "contains":
        return _contains(value)
    return _ordering(op, value)


def _normal(value: Any) -> Any:
    """Bring a value to the form equality compares: folded text, numbers as floats."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip().casefold()
        try:
            return float(text)
        except ValueError:
            return text
    return value


def _contains(value: Any) -> Callable[[Any], bool]:
    needle = str(value).strip().casefold()
    wanted = _normal(value)

    def holds(actual: Any) -> bool:
        if isinstance(actual, str):
            return needle in actual.casefold()
        if isinstance(actual, (list, tuple, set)):
            return any(_normal(item) == wanted for item in actual)
        return False

    return holds


def _ordering(op: str, value: Any) -> Callable[[Any], bool]:
    if isinstance(value, str):
        limit_time = parse_when(value)

        def by_time(actual: Any) -> bool:
            moment = as_utc(actual)
            if moment is None or limit_time is None:
                return False
            return moment > limit_time if op == "gt" else moment < limit_time

        return by_time
    limit = float(value)

    def by_number(actual: Any) -> bool:
        number = _number(actual)
        if number is None:
            return False
        return number > limit if op == "gt" else number < limit

    return by_number


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


# --- explained evaluation --------------------------------------------------------


def evaluate(
    node: FilterNode,
    state: ProspectState,
    *,
    now: datetime,
    audiences: Mapping[str, Audience] | None = None,
) -> Evaluation:
    """Evaluate a filter and explain the result.

    Every predicate is evaluated (no short cut), so the explanation shows all of
    them; predicates inside a member audience appear after its membership line.
    Gives the same `matched` as `compile_filter(node).matches()`.
    """
    outcomes: list[PredicateOutcome] = []
    matched = _Explainer(state, now, audiences or {}, outcomes).run(node, frozenset())
    return Evaluation(matched, tuple(outcomes))


class _Explainer:
    def __init__(
        self,
        state: ProspectState,
        now: datetime,
        audiences: Mapping[str, Audience],
        outcomes: list[PredicateOutcome],
    ) -> None:
        self.state, self.now, self.audiences = state, now, audiences
        self.outcomes = outcomes

    def run(self, node: FilterNode, within: frozenset[str]) -> bool:
        if isinstance(node, AllOf):
            return all([self.run(child, within) for child in node.of])
        if isinstance(node, AnyOf):
            return any([self.run(child, within) for child in node.of])
        if isinstance(node, Not):
            return not self.run(node.filter, within)
        if isinstance(node, InAudience):
            return self._membership(node, within)
        held = _leaf(node)(self.state, self.now)
        self.outcomes.append(
            PredicateOutcome(node.describe(), held, self._values(node))
        )
        return held

    def _membership(self, node: InAudience, within: frozenset[str]) -> bool:
        target = self.audiences.get(node.audience_id)
        position = len(self.outcomes)
        held = False
        if target is not None and node.audience_id not in within:
            held = self.run(target.filter, within | {node.audience_id})
        values = {f"audience:{node.audience_id}": "member" if held else "not a member"}
        self.outcomes.insert(position, PredicateOutcome(node.describe(), held, values))
        return held

    def _values(self, node: FilterNode) -> dict[str, str]:
        state = self.state
        if isinstance(node, (CompanySignal, PersonSignal)):
            facts = (
                state.account_signals
                if isinstance(node, CompanySignal)
                else state.person_signals
            )
            return _signal_values(facts, node.types)
        if isinstance(node, HasEmail):
            return {"email": "present" if state.person.get("email") else "missing"}
        if isinstance(node, LastActivity):
            last = as_utc(state.person.get("last_activity_at"))
            return {"last_activity_at": "" if last is None else last.isoformat()}
        if isinstance(node, FieldComparison):
            record = state.person if node.object == "person" else state.account
            actual = field_value(record, node.field)
            return {
                f"{node.object}.{node.field}": "" if actual is None else str(actual)
            }
        return {}


def _signal_values(
    facts: Mapping[str, SignalFact], types: Iterable[str]
) -> dict[str, str]:
    values: dict[str, str] = {}
    for name in types:
        fact = facts.get(name)
        if fact is None:
            continue
        values[f"signal:{name}"] = fact.last_at.isoformat()
        values[f"signal:{name}:count"] = str(fact.count)
        values[f"signal:{name}:id"] = fact.last_signal_id
    return values


# --- when the clock may change the answer ----------------------------------------


def next_change(
    node: FilterNode,
    state: ProspectState,
    *,
    now: datetime,
    audiences: Mapping[str, Audience] | None = None,
) -> datetime | None:
    """The earliest moment after `now` when the result may flip with time alone.

    A signal leaving its window, last activity crossing "before" or leaving
    "within". Returns None when no time-based predicate can change. The answer
    is a moment worth re-evaluating at, not a promise that the result changes.
    """
    moments = [
        moment
        for moment in _moments(node, state, audiences or {}, frozenset())
        if moment > now
    ]
    return min(moments, default=None)


def _moments(
    node: FilterNode,
    state: ProspectState,
    audiences: Mapping[str, Audience],
    within: frozenset[str],
) -> Iterable[datetime]:
    if isinstance(node, InAudience):
        target = audiences.get(node.audience_id)
        if target is not None and node.audience_id not in within:
            yield from _moments(
                target.filter, state, audiences, within | {node.audience_id}
            )
        return
    for child in node.children():
        yield from _moments(child, state, audiences, within)
    if isinstance(node, (CompanySignal, PersonSignal)) and node.within_days:
        facts = (
            state.account_signals
            if isinstance(node, CompanySignal)
            else state.person_signals
        )
        span = timedelta(days=node.within_days)
        yield from (facts[t].last_at + span for t in node.types if t in facts)
    if isinstance(node, LastActivity) and node.condition != "empty":
        last = as_utc(state.person.get("last_activity_at"))
        if last is not None:
            yield (
                months_elapsed_at(last, node.months)
                if node.months
                else last + timedelta(days=node.days or 0)
            )


# --- state for branch conditions -------------------------------------------------


def state_from_enrollment(enrollment: Mapping[str, Any]) -> ProspectState:
    """Build the state a branch condition is evaluated on from a run's enrollment.

    Uses the enrollment's profile snapshot and its signals (newest first). A
    branch therefore sees the prospect as it was when the run started, which is
    what the run's templates see too.
    """
    person: dict[str, SignalFact] = {}
    account: dict[str, SignalFact] = {}
    for signal in enrollment.get("signals") or []:
        at = as_utc(signal.get("occurred_at"))
        if at is None:
            continue
        facts = person if str(signal.get("scope", "")).upper() == "PERSON" else account
        _remember(facts, signal, at)
    return ProspectState(
        person=enrollment.get("person") or {},
        account=enrollment.get("account"),
        person_signals=person,
        account_signals=account,
    )


def _remember(
    facts: dict[str, SignalFact], signal: Mapping[str, Any], at: datetime
) -> None:
    name = str(signal.get("type", ""))
    fact = facts.get(name)
    if fact is None:
        facts[name] = SignalFact(
            type=name,
            last_at=at,
            last_signal_id=str(signal.get("signal_id", "")),
            attributes=dict(signal.get("attributes") or {}),
        )
        return
    fact.count += 1
    if at > fact.last_at:
        fact.last_at = at
        fact.last_signal_id = str(signal.get("signal_id", ""))
        fact.attributes = dict(signal.get("attributes") or {})
