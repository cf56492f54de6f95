"""Anchors: discrete facts a prospect must have for an audience to match.

An anchor *dimension* comes from one conjunct directly under an audience's
top-level `all` (or from the whole filter when it is one predicate) that can only
hold when the prospect has one of a few discrete facts, its *keys*:

- a person or company signal predicate: one of its signal types, as
  `PERSON:job_change` or `COMPANY:funding` (kinds `PERSON`, `COMPANY`);
- an `eq` or `in` comparison of a person or account field with text values: one
  of those values, as `person.title=vp sales` (kind `person.title`).

A prospect's keys (`prospect_keys`) are the same facts about it: the signal types
it has, and the folded value of each indexed field. An audience can match only a
prospect that has a key of every one of its dimensions, so the index
(`services.matcher.index`) looks up audiences by the prospect's keys instead of
evaluating every audience that reads what changed.

Text is folded as the evaluation compares it (`signalflow.workflow.evaluate`:
stripped and case-folded). Values the evaluation would compare as numbers (text
that parses as a number, numbers, booleans) are never indexed, so a key never
stands for a comparison it would get wrong; such a conjunct is simply not a
dimension, and a field value of that sort gives the prospect no key, which is
right because it cannot equal any indexed text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from signalflow.workflow.evaluate import ProspectState, field_value
from signalflow.workflow.filters import (
    AllOf,
    CompanySignal,
    FieldComparison,
    FilterNode,
    PersonSignal,
)

PERSON = "PERSON"
COMPANY = "COMPANY"

Field = tuple[str, str]
"""An indexed field: (`person` or `account`, field name)."""


@dataclass(frozen=True)
class Dimension:
    """One conjunct seen as the keys one of which a prospect must have.

    `rank` orders dimensions by how well they usually narrow the audience down:
    a person field (one value per person), an account field, person signals,
    company signals (an account has many).
    """

    kind: str
    keys: frozenset[str]
    rank: int
    field: Field | None = None


def dimensions(root: FilterNode) -> tuple[Dimension, ...]:
    """The dimensions of a filter, best first (by rank, then fewest keys)."""
    conjuncts = root.of if isinstance(root, AllOf) else [root]
    found = [
        dimension
        for dimension in (dimension_of(node) for node in conjuncts)
        if dimension is not None
    ]
    found.sort(key=lambda dimension: (dimension.rank, len(dimension.keys)))
    return tuple(found)


def dimension_of(node: FilterNode) -> Dimension | None:
    """The dimension one conjunct stands for, or None when it has none."""
    if isinstance(node, PersonSignal):
        return Dimension(
            PERSON, frozenset(signal_key(PERSON, t) for t in node.types), 2
        )
    if isinstance(node, CompanySignal):
        keys = frozenset(signal_key(COMPANY, t) for t in node.types)
        return Dimension(COMPANY, keys, 3)
    if isinstance(node, FieldComparison) and node.op in ("eq", "in"):
        values = node.value if isinstance(node.value, list) else [node.value]
        folded = [fold(value) for value in values]
        if not folded or any(text is None for text in folded):
            return None
        kind = f"{node.object}.{node.field}"
        return Dimension(
            kind,
            frozenset(f"{kind}={text}" for text in folded),
            0 if node.object == "person" else 1,
            (node.object, node.field),
        )
    return None


def signal_key(scope: str, signal_type: str) -> str:
    return f"{scope}:{signal_type}"


def fold(value: Any) -> str | None:
    """Text as the evaluation compares it; None for anything it would not compare
    as text (numbers, numeric text, booleans, lists)."""
    if not isinstance(value, str):
        return None
    return _fold_text(value)


@lru_cache(maxsize=16_384)
def _fold_text(value: str) -> str | None:
    # Field values repeat (titles, industries, countries): worth remembering.
    text = value.strip().casefold()
    try:
        float(text)
    except ValueError:
        return text
    return None


Keys = dict[str, tuple[str, ...]]
"""A prospect's keys by dimension kind."""


def prospect_keys(
    state: ProspectState, fields: Iterable[Field], *, account: Keys | None = None
) -> Keys:
    """The prospect's keys by dimension kind: its signal types, and the folded
    value of each of `fields` it has as text.

    `account` are the keys of the prospect's account (`account_keys`), when the
    caller has them: everyone at an account shares them.
    """
    if account is None:
        account = account_keys(state.account, state.account_signals, fields)
    return person_keys(state.person, state.person_signals, fields, account=account)


def person_keys(
    profile: Mapping[str, Any],
    signal_types: Iterable[str],
    fields: Iterable[Field],
    *,
    account: Keys,
) -> Keys:
    """A person's keys (their profile and the signal types they have) added to
    those of their account."""
    keys = dict(account)
    person_signals = tuple(signal_key(PERSON, t) for t in signal_types)
    if person_signals:
        keys[PERSON] = person_signals
    _add_fields(keys, "person", profile, fields)
    return keys


def account_keys(
    profile: Mapping[str, Any] | None,
    signal_types: Iterable[str],
    fields: Iterable[Field],
) -> Keys:
    """The keys an account gives everyone at it: its signal types and fields."""
    keys: Keys = {}
    company_signals = tuple(signal_key(COMPANY, t) for t in signal_types)
    if company_signals:
        keys[COMPANY] = company_signals
    _add_fields(keys, "account", profile, fields)
    return keys


def _add_fields(
    keys: Keys, scope: str, record: Mapping[str, Any] | None, fields: Iterable[Field]
) -> None:
    for field_scope, name in fields:
        if field_scope != scope:
            continue
        text = fold(field_value(record, name))
        if text is not None:
            kind = f"{scope}.{name}"
            keys[kind] = (f"{kind}={text}",)
