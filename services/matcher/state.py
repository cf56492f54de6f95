"""What the matcher remembers about people and accounts, as plain JSON-able data.

One `EntityState` per person and per account: the latest profile record (times as
epoch milliseconds), and per signal type the recent occurrences, newest first. The
same signal id is applied once (`apply_signal` says whether it changed anything);
a signal that arrives late keeps the newest occurrence as the type's last one.
`prospect_state()` turns a person and their account into the evaluation's
`ProspectState`.

Every update here is idempotent: applying the same signal or profile twice leaves
the same state. The matcher relies on that when Kafka delivers a record again
after a crash.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from signalflow.workflow.evaluate import ProspectState, SignalFact

Json = dict[str, Any]

PROFILE_KEYS = ("email", "owner", "past_owners", "last_activity_at")


def to_millis(value: Any) -> int | None:
    """Epoch milliseconds of a datetime (aware or UTC-naive) or of an int."""
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError(f"expected a datetime or epoch milliseconds, got {value!r}")


def from_millis(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


def stored_profile(record: Mapping[str, Any]) -> Json:
    """The profile record as the tables keep it: times in epoch milliseconds."""
    return {
        "key": record["key"],
        "kind": str(record["kind"]),
        "account_key": record["account_key"],
        "updated_at": to_millis(record["updated_at"]),
        "deleted": bool(record.get("deleted", False)),
        "email": record.get("email"),
        "owner": record.get("owner"),
        "past_owners": list(record.get("past_owners") or []),
        "last_activity_at": to_millis(record.get("last_activity_at")),
        "fields": dict(record.get("fields") or {}),
    }


EVERYTHING = "*"
"""The key of a change every audience may care about (a first or deleted profile)."""


def changed_keys(scope: str, old: Mapping[str, Any] | None, new: Json) -> set[str]:
    """The index keys (`email`, `field:person.title`, ...) a profile change touches.

    `scope` is `person` or `account`. A first profile touches everything, even the
    fields it lacks (`title is not "CTO"` holds for a missing title).
    """
    if old is None:
        return {EVERYTHING}
    before = old
    keys: set[str] = set()
    for name in PROFILE_KEYS:
        if before.get(name) != new.get(name):
            keys.add(f"field:{scope}.{name}")
            if scope == "person" and name == "email":
                keys.add("email")
            if scope == "person" and name == "last_activity_at":
                keys.add("last_activity")
    old_fields = before.get("fields") or {}
    new_fields = new.get("fields") or {}
    for name in old_fields.keys() | new_fields.keys():
        if old_fields.get(name) != new_fields.get(name):
            keys.add(f"field:{scope}.{name}")
    return keys


@dataclass(frozen=True, slots=True)
class SignalLimits:
    """How much signal history an entity keeps."""

    window_ms: int
    kept: int


class EntityState:
    """A person's or an account's profile and signal history.

    `data` is the JSON-able form stored in a table: `{"profile": {...} | None,
    "signals": {type: {"o": [[signal_id, occurred_ms, attributes], ...]}},
    "account": account_key}` with occurrences newest first.
    """

    __slots__ = ("data",)

    def __init__(self, data: Json | None = None) -> None:
        self.data: Json = data if data is not None else {"profile": None, "signals": {}}

    @property
    def profile(self) -> Json | None:
        profile: Json | None = self.data.get("profile")
        return profile

    @property
    def account_key(self) -> str | None:
        key: str | None = self.data.get("account")
        return key

    def set_account(self, account_key: str) -> None:
        self.data["account"] = account_key

    def set_profile(self, profile: Json) -> set[str] | None:
        """Keep `profile` unless an equally new or newer one is already kept.

        Returns the index keys that changed, or None when the profile was stale.
        """
        current = self.profile
        if current is not None and current["updated_at"] > profile["updated_at"]:
            return None
        scope = "person" if profile["kind"] == "PERSON" else "account"
        keys = changed_keys(scope, current, profile)
        self.data["profile"] = profile
        return keys

    def apply_signal(
        self,
        signal_id: str,
        kind: str,
        occurred_ms: int,
        attributes: Mapping[str, str],
        *,
        limits: SignalLimits,
        now_ms: int,
    ) -> bool:
        """Record one occurrence of a signal; returns False for a duplicate id.

        Occurrences older than the window, or older than every kept one when the
        history is full, change nothing (and return False).
        """
        if occurred_ms < now_ms - limits.window_ms:
            return False
        signals: Json = self.data.setdefault("signals", {})
        history: list[list[Any]] = signals.setdefault(kind, {"o": []})["o"]
        if any(entry[0] == signal_id for entry in history):
            return False
        if len(history) >= limits.kept and occurred_ms <= history[-1][1]:
            return False
        history.append([signal_id, occurred_ms, dict(attributes)])
        history.sort(key=lambda entry: entry[1], reverse=True)
        del history[limits.kept :]
        return True

    def facts(self, *, now_ms: int, window_ms: int) -> dict[str, SignalFact]:
        """One `SignalFact` per signal type: the newest occurrence and the count of
        occurrences within the window."""
        facts: dict[str, SignalFact] = {}
        oldest = now_ms - window_ms
        for kind, entry in (self.data.get("signals") or {}).items():
            history = entry["o"]
            if not history:
                continue
            signal_id, occurred_ms, attributes = history[0]
            count = sum(1 for item in history if item[1] >= oldest)
            facts[kind] = SignalFact(
                type=kind,
                last_at=from_millis(occurred_ms),
                count=max(count, 1),
                last_signal_id=signal_id,
                attributes=attributes,
            )
        return facts

    def kept_signals(self) -> dict[str, list[Json]]:
        """The signal history as `person_handover` records carry it: per type,
        the occurrences newest first."""
        return {
            kind: [
                {"signal_id": signal_id, "occurred_at": at, "attributes": attributes}
                for signal_id, at, attributes in entry["o"]
            ]
            for kind, entry in (self.data.get("signals") or {}).items()
            if entry["o"]
        }

    def signal_types(self) -> set[str]:
        return {
            kind
            for kind, entry in (self.data.get("signals") or {}).items()
            if entry["o"]
        }


def prospect_state(
    person: EntityState,
    account: EntityState | None,
    *,
    now_ms: int,
    window_ms: int,
    account_facts: dict[str, SignalFact] | None = None,
) -> ProspectState:
    """The evaluation's view of a person (who must have a profile) and account."""
    profile = person.profile
    if profile is None:
        raise ValueError("expected a person with a profile; this one has none")
    if account_facts is None:
        account_facts = (
            account.facts(now_ms=now_ms, window_ms=window_ms) if account else {}
        )
    return ProspectState(
        person=profile,
        account=account.profile if account else None,
        person_signals=person.facts(now_ms=now_ms, window_ms=window_ms),
        account_signals=account_facts,
    )


def signal_refs(
    state: ProspectState, types_by_scope: Iterable[tuple[str, str]]
) -> list[Json]:
    """The enrollment's `signals`: the facts of the given (scope, type) pairs that
    the prospect has, newest first."""
    refs: list[Json] = []
    for scope, kind in types_by_scope:
        facts = state.account_signals if scope == "COMPANY" else state.person_signals
        fact = facts.get(kind)
        if fact is None:
            continue
        refs.append(
            {
                "signal_id": fact.last_signal_id,
                "type": kind,
                "scope": scope,
                "occurred_at": to_millis(fact.last_at),
                "attributes": dict(fact.attributes),
            }
        )
    refs.sort(key=lambda ref: ref["occurred_at"], reverse=True)
    return refs
