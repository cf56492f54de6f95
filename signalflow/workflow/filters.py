"""The audience filter language: a tree of `all` / `any` / `not` over predicates.

A filter is plain JSON with a `kind` on every node:

```json
{"kind": "all", "of": [
  {"kind": "company_signal", "types": ["funding"], "within_days": 90},
  {"kind": "person_signal", "types": ["multi_thread"]},
  {"kind": "has_email", "value": true},
  {"kind": "last_activity", "condition": "before", "months": 6, "or_empty": true}
]}
```

The same language is used by audiences and by the `branch` step of a workflow.
`reads()` lists the state keys a filter depends on, for the matcher's index;
evaluation lives in `signalflow.workflow.evaluate`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from signalflow.workflow.clock import parse_when
from signalflow.workflow.errors import user_error

if TYPE_CHECKING:
    from signalflow.workflow.workflow import Audience

SIGNAL_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")

COMPANY_SIGNAL_TYPES: dict[str, str] = {
    "funding": "the company raised a funding round",
    "hiring_surge": "the company is hiring fast, or in one department",
    "new_tech": "the company adopted a technology",
    "acquisition": "the company acquired or was acquired",
    "leadership_change": "a new executive joined the company",
    "expansion": "the company opened an office or entered a market",
    "website_visit": "people from the company visited your website",
    "intent": "the company researches topics you sell into",
    "earnings": "the company published results",
}
PERSON_SIGNAL_TYPES: dict[str, str] = {
    "job_change": "the person moved to a new company",
    "new_hire": "the person joined a company in the last months",
    "promotion": "the person was promoted within their company",
    "multi_thread": "the person is in the buying committee of an engaged account",
    "past_champion": "a past user or buyer of your product joined a new company",
    "past_customer": "the person worked at one of your customers",
    "engagement": "the person engaged with your content or emails",
}
KNOWN_SIGNAL_TYPES: dict[str, str] = COMPANY_SIGNAL_TYPES | PERSON_SIGNAL_TYPES

FIELD_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]{0,99}$"
MAX_DAYS = 3650
MAX_MONTHS = 120

Scalar = str | int | float | bool


class FilterNode(BaseModel):
    """Behaviour shared by every node of a filter tree."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def reads(self, audiences: Mapping[str, Audience] | None = None) -> set[str]:
        """Return the state keys this node depends on.

        Keys are `signal:<type>`, `field:person.<name>`, `field:account.<name>`,
        `email`, `last_activity` and `audience:<id>`. With `audiences`, membership
        predicates are expanded transitively into the keys of the audiences they
        name (cycles are cut, unknown ids contribute only their `audience:` key).
        """
        keys: set[str] = set()
        self._collect_reads(keys, audiences or {}, set())
        return keys

    def _collect_reads(
        self, keys: set[str], audiences: Mapping[str, Audience], seen: set[str]
    ) -> None:
        raise NotImplementedError  # every concrete node overrides it

    def children(self) -> Iterator[Filter]:
        """Yield the direct sub-filters (none for a predicate)."""
        return iter(())

    def walk(self) -> Iterator[FilterNode]:
        """Yield this node and every node below it, depth first."""
        yield self
        for child in self.children():
            yield from child.walk()

    def describe(self) -> str:
        """Return the node as a sentence fragment a user can read."""
        raise NotImplementedError  # every concrete node overrides it


class AllOf(FilterNode):
    """Holds when every sub-filter holds."""

    kind: Literal["all"] = "all"
    of: list[Filter] = Field(min_length=1)

    @field_validator("of", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise user_error("An 'all' group needs at least one condition.")
        return value

    def children(self) -> Iterator[Filter]:
        return iter(self.of)

    def _collect_reads(
        self, keys: set[str], audiences: Mapping[str, Audience], seen: set[str]
    ) -> None:
        for child in self.of:
            child._collect_reads(keys, audiences, seen)

    def describe(self) -> str:
        return "(" + " and ".join(child.describe() for child in self.of) + ")"


class AnyOf(FilterNode):
    """Holds when at least one sub-filter holds."""

    kind: Literal["any"] = "any"
    of: list[Filter] = Field(min_length=1)

    @field_validator("of", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise user_error("An 'any' group needs at least one condition.")
        return value

    def children(self) -> Iterator[Filter]:
        return iter(self.of)

    def _collect_reads(
        self, keys: set[str], audiences: Mapping[str, Audience], seen: set[str]
    ) -> None:
        for child in self.of:
            child._collect_reads(keys, audiences, seen)

    def describe(self) -> str:
        return "(" + " or ".join(child.describe() for child in self.of) + ")"


class Not(FilterNode):
    """Holds when its sub-filter does not."""

    kind: Literal["not"] = "not"
    filter: Filter

    def children(self) -> Iterator[Filter]:
        return iter((self.filter,))

    def _collect_reads(
        self, keys: set[str], audiences: Mapping[str, Audience], seen: set[str]
    ) -> None:
        self.filter._collect_reads(keys, audiences, seen)

    def describe(self) -> str:
        return f"not {self.filter.describe()}"


def _check_signal_types(types: list[str]) -> list[str]:
    if not types:
        raise user_error("Choose at least one signal type.")
    for name in types:
        if not SIGNAL_TYPE_PATTERN.match(name):
            raise user_error(
                "Signal types are lower-case names such as 'funding' or "
                "'job_change'; got {name!r}.",
                name=name,
            )
    if len(set(types)) != len(types):
        raise user_error("Each signal type may be listed only once.")
    return types


class _SignalPredicate(FilterNode):
    scope: ClassVar[Literal["person", "account"]]
    label: ClassVar[str]

    types: list[str]
    within_days: int | None = Field(default=None, validate_default=True)

    @field_validator("types")
    @classmethod
    def _types_are_names(cls, value: list[str]) -> list[str]:
        return _check_signal_types(value)

    @field_validator("within_days")
    @classmethod
    def _window_positive(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= MAX_DAYS:
            raise user_error(
                "A signal window is 1 to {max} days; got {value!r}.",
                max=MAX_DAYS,
                value=value,
            )
        return value

    def _collect_reads(
        self, keys: set[str], audiences: Mapping[str, Audience], seen: set[str]
    ) -> None:
        keys.update(f"signal:{name}" for name in self.types)

    def describe(self) -> str:
        names = " or ".join(self.types)
        window = f" in the last {self.within_days} days" if self.within_days else ""
        return f"{self.label} signal {names}{window}"


class CompanySignal(_SignalPredicate):
    """The prospect's account has a signal of one of `types` (within the window)."""

    scope: ClassVar[Literal["person", "account"]] = "account"
    label: ClassVar[str] = "company"
    kind: Literal["company_signal"] = "company_signal"


class PersonSignal(_SignalPredicate):
    """The prospect has a signal of one of `types` (within the window)."""

    scope: ClassVar[Literal["person", "account"]] = "person"
    label: ClassVar[str] = "person"
    kind: Literal["person_signal"] = "person_signal"


class HasEmail(FilterNode):
    """The prospect has (value=true) or lacks (value=false) an email address."""

    kind: Literal["has_email"] = "has_email"
    value: bool = True

    def _collect_reads(
        self, keys: set[str], audiences: Mapping[str, Audience], seen: set[str]
    ) -> None:
        keys.add("email")

    def describe(self) -> str:
        return "has an email address" if self.value else "has no email address"


class LastActivity(FilterNode):
    """The prospect's last recorded activity, relative to the evaluation time.

    - `empty`: no activity was ever recorded;
    - `before`: the last activity is at least `days` days or `months` calendar
      months old (one of the two), or with `or_empty` there is none at all;
    - `within`: the last activity happened less than `days` days ago.

    "N months ago" counts calendar months: an activity on 31 August is six months
    old from 1 March on (February has no 31st), one on 15 August from 15 February.
    """

    kind: Literal["last_activity"] = "last_activity"
    condition: Literal["empty", "before", "within"]
    days: int | None = Field(default=None, ge=1, le=MAX_DAYS)
    months: int | None = Field(default=None, ge=1, le=MAX_MONTHS)
    or_empty: bool = False

    @model_validator(mode="after")
    def _period_matches_condition(self) -> LastActivity:
        given = [name for name in ("days", "months") if getattr(self, name)]
        if self.condition == "empty" and given:
            raise user_error("'Empty' last activity takes no days or months.")
        if self.condition == "before" and len(given) != 1:
            raise user_error(
                "'Before' last activity needs either days or months (one of them)."
            )
        if self.condition == "within" and given != ["days"]:
            raise user_error("'Within' last activity needs a number of days.")
        if self.condition == "empty" and self.or_empty:
            raise user_error("'Or empty' only applies to 'before' or 'within'.")
        return self

    def _collect_reads(
        self, keys: set[str], audiences: Mapping[str, Audience], seen: set[str]
    ) -> None:
        keys.add("last_activity")

    def describe(self) -> str:
        if self.condition == "empty":
            return "last activity is empty"
        unit = f"{self.days} days" if self.days else f"{self.months} months"
        when = (
            f"before {unit} ago"
            if self.condition == "before"
            else f"within the last {unit}"
        )
        prefix = "last activity empty or " if self.or_empty else "last activity "
        return prefix + when


ComparisonOp = Literal["eq", "ne", "in", "contains", "gt", "lt", "exists"]
_OP_WORDS = {
    "eq": "is",
    "ne": "is not",
    "in": "is one of",
    "contains": "contains",
    "gt": "is greater than",
    "lt": "is less than",
    "exists": "is set",
}


class FieldComparison(FilterNode):
    """Compares one field of the person's or the account's profile record.

    The field is looked up in the record's `fields` map first, then among the
    record's own keys (`email`, `owner`, ...). Text compares without regard to case;
    `gt` / `lt` compare numbers, or ISO dates when `value` is a date string; `in`
    takes a non-empty list; `exists` takes no value and holds when the field is set
    to something other than an empty string. A missing field matches only `ne`.
    """

    kind: Literal["compare"] = "compare"
    object: Literal["person", "account"]
    field: str = Field(pattern=FIELD_NAME_PATTERN)
    op: ComparisonOp
    value: Scalar | list[Scalar] | None = None

    @model_validator(mode="after")
    def _value_fits_operator(self) -> FieldComparison:
        if self.op == "exists":
            if self.value is not None:
                raise user_error("'Is set' compares with no value; remove the value.")
            return self
        if self.value is None:
            raise user_error("This comparison needs a value to compare with.")
        if self.op == "in":
            if not isinstance(self.value, list) or not self.value:
                raise user_error("'Is one of' needs a non-empty list of values.")
            return self
        if isinstance(self.value, list):
            raise user_error(
                "Only 'is one of' takes a list; got {value!r}.", value=self.value
            )
        if self.op in ("gt", "lt"):
            _check_orderable(self.value)
        return self

    def _collect_reads(
        self, keys: set[str], audiences: Mapping[str, Audience], seen: set[str]
    ) -> None:
        keys.add(f"field:{self.object}.{self.field}")

    def describe(self) -> str:
        value = "" if self.op == "exists" else f" {self.value!r}"
        return f"{self.object} {self.field} {_OP_WORDS[self.op]}{value}"


def _check_orderable(value: Scalar) -> None:
    if isinstance(value, bool):
        raise user_error("'Greater/less than' compares numbers or dates, not yes/no.")
    if isinstance(value, str) and parse_when(value) is None:
        raise user_error(
            "'Greater/less than' compares numbers or ISO dates such as "
            "'2024-05-01'; got {value!r}.",
            value=value,
        )


class InAudience(FilterNode):
    """The prospect belongs to another saved audience."""

    kind: Literal["in_audience"] = "in_audience"
    audience_id: str = Field(min_length=1, max_length=64)

    def _collect_reads(
        self, keys: set[str], audiences: Mapping[str, Audience], seen: set[str]
    ) -> None:
        keys.add(f"audience:{self.audience_id}")
        if self.audience_id in seen or self.audience_id not in audiences:
            return
        seen.add(self.audience_id)
        audiences[self.audience_id].filter._collect_reads(keys, audiences, seen)

    def describe(self) -> str:
        return f"in audience {self.audience_id!r}"


Filter = Annotated[
    AllOf
    | AnyOf
    | Not
    | CompanySignal
    | PersonSignal
    | HasEmail
    | LastActivity
    | FieldComparison
    | InAudience,
    Field(discriminator="kind"),
]
"""Any node of the filter language, told apart by its `kind`."""

FILTER_KINDS: tuple[str, ...] = (
    "all",
    "any",
    "not",
    "company_signal",
    "person_signal",
    "has_email",
    "last_activity",
    "compare",
    "in_audience",
)

for _model in (AllOf, AnyOf, Not):
    _model.model_rebuild()


def audience_ids(filter: FilterNode) -> set[str]:
    """Return the ids of the audiences a filter names directly."""
    return {node.audience_id for node in filter.walk() if isinstance(node, InAudience)}


def unknown_signal_types(filter: FilterNode) -> set[str]:
    """Return the signal type names a filter uses that are not in the known list."""
    names: set[str] = set()
    for node in filter.walk():
        if isinstance(node, _SignalPredicate):
            names.update(name for name in node.types if name not in KNOWN_SIGNAL_TYPES)
    return names
