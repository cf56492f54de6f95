"""The variables a template may use, and the run context they take values from.

Users write variables as `$Current Title` (the longest catalog name that matches
wins) or `${Current Title}` (braces, when text follows without a space). Besides the
catalog below a template may read any profile field, `${person.<field>}` or
`${account.<field>}`; any signal attribute, `${signal.<type>.<attribute>}`; and any
output of a named earlier step, `${<step name or id>: <output>}`. `docs/variables.md`
lists the catalog and is checked against it by a test.

Values come from a `RunContext`: the enrollment's snapshot of the person, the
account and their signals, plus the outputs of the steps that already ran, keyed
`"<step id>.<output name>"`. An output variable used without a step (`$AI Body`)
takes the value of the latest step of that kind that ran before; the workflow
refuses to save a template whose output no earlier step produces on every path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from signalflow.workflow.clock import as_utc

VariableGroup = Literal["person", "account", "owner", "signal", "output"]
StepKindName = str

STEP_ID_PATTERN = re.compile(r"^\d+(\.(then|else)\.\d+)*$")
OUTPUT_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Variable:
    """One catalog entry: what users write, what it means, where its value comes from.

    `producer` and `output` are set for output variables only: the step kind whose
    output this is, and the output's name in the outputs map.
    """

    name: str
    group: VariableGroup
    description: str
    example: str
    resolve: Callable[[RunContext], str | None] = field(repr=False, compare=False)
    producer: StepKindName | None = None
    output: str | None = None

    @property
    def source(self) -> str:
        """Where the value comes from, in words (for the documentation)."""
        if self.producer is not None:
            return f"output `{self.output}` of a `{self.producer}` step"
        return (self.resolve.__doc__ or "").strip()


@dataclass
class RunContext:
    """Everything a template of one run can read.

    Build it with `from_enrollment()`; `outputs` maps `"<step id>.<name>"` to the
    value an earlier step produced; `step_names` maps a step's name to its id, for
    `${<step name>: <output>}`.
    """

    person: Mapping[str, Any]
    account: Mapping[str, Any] | None = None
    signals: list[Mapping[str, Any]] = field(default_factory=list)
    trigger: Mapping[str, Any] | None = None
    outputs: Mapping[str, Any] = field(default_factory=dict)
    step_names: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_enrollment(
        cls,
        enrollment: Mapping[str, Any],
        *,
        outputs: Mapping[str, Any] | None = None,
        step_names: Mapping[str, str] | None = None,
    ) -> RunContext:
        """Build a context from an enrollment's snapshot.

        Reads the enrollment record of `schemas/enrollment`: `person` (a profile:
        `key`, `email`, `owner`, `past_owners`, `fields`...), `account` (the same,
        or None) and `signals` (`{"signal_id", "type", "occurred_at",
        "attributes"}`). The signal that started the run is the newest one.
        Owners are profile strings; a profile field `owner_name` / `owner_email`
        refines them where the integrator provides it.
        """
        signals = sorted(
            enrollment.get("signals") or [],
            key=lambda signal: _sortable_time(signal.get("occurred_at")),
            reverse=True,
        )
        return cls(
            person=enrollment.get("person") or {},
            account=enrollment.get("account"),
            signals=signals,
            trigger=signals[0] if signals else None,
            outputs=dict(outputs or {}),
            step_names=dict(step_names or {}),
        )

    def field_value(self, scope: Literal["person", "account"], name: str) -> Any:
        """Return a profile field: from the record's `fields`, else its own keys."""
        record = self.person if scope == "person" else (self.account or {})
        fields = record.get("fields") or {}
        if name in fields:
            return fields[name]
        return record.get(name)

    def latest_signal(self, type_name: str) -> Mapping[str, Any] | None:
        """Return the newest signal of one type in the snapshot, or None."""
        return next((s for s in self.signals if s.get("type") == type_name), None)

    def signal_attribute(self, type_name: str, attribute: str) -> Any:
        signal = self.latest_signal(type_name)
        if signal is None:
            return None
        return (signal.get("attributes") or {}).get(attribute)

    def output_value(self, name: str, *, step: str | None = None) -> Any:
        """Return an output: of `step` (a name or an id), else of the latest step.

        "Latest" is the step that ran last among those that produced `name`; the
        outputs map only holds steps that ran in this run.
        """
        if step is not None:
            step_id = step if STEP_ID_PATTERN.match(step) else self.step_names.get(step)
            return None if step_id is None else self.outputs.get(f"{step_id}.{name}")
        candidates = [
            key.rpartition(".")[0]
            for key in self.outputs
            if key.rpartition(".")[2] == name
        ]
        if not candidates:
            return None
        return self.outputs[f"{max(candidates, key=step_order)}.{name}"]


def step_order(step_id: str) -> tuple[int, ...]:
    """Sort key putting step ids in run order: `2` < `2.then.0` < `2.else.0` < `3`."""
    arms = {"then": 0, "else": 1}
    return tuple(
        int(part) if part.isdigit() else arms[part] for part in step_id.split(".")
    )


def as_text(value: Any) -> str:
    """Render a raw value as the text a template shows (empty for nothing)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return ", ".join(as_text(item) for item in value)
    if isinstance(value, Mapping):
        return as_text(value.get("name") or value.get("email") or value.get("id"))
    return str(value)


def _sortable_time(value: Any) -> datetime:
    return as_utc(value) or datetime.min.replace(tzinfo=UTC)


def _person(*names: str) -> Callable[[RunContext], str | None]:
    def resolve(ctx: RunContext) -> str | None:
        return _first(ctx.field_value("person", name) for name in names)

    resolve.__doc__ = _fields_doc("person", names)
    return resolve


def _account(*names: str) -> Callable[[RunContext], str | None]:
    def resolve(ctx: RunContext) -> str | None:
        return _first(ctx.field_value("account", name) for name in names)

    resolve.__doc__ = _fields_doc("account", names)
    return resolve


def _fields_doc(scope: str, names: tuple[str, ...]) -> str:
    return f"{scope} field " + ", else ".join(f"`{name}`" for name in names)


def _first(values: Iterable[Any]) -> str | None:
    for value in values:
        if value not in (None, ""):
            return as_text(value)
    return None


def _full_name(ctx: RunContext) -> str | None:
    """person field `full_name`, else `name`, else first and last name"""
    given = _person("full_name", "name")(ctx)
    if given:
        return given
    parts = [_person("first_name")(ctx), _person("last_name")(ctx)]
    return " ".join(part for part in parts if part) or None


def _owner(
    scope: Literal["person", "account"], part: Literal["name", "email"], *, past: bool
) -> Callable[[RunContext], str | None]:
    def resolve(ctx: RunContext) -> str | None:
        record = ctx.person if scope == "person" else (ctx.account or {})
        if past:
            return _owner_part(_latest_past_owner(record), part)
        fields = record.get("fields") or {}
        named = fields.get(f"owner_{part}")
        return _first([named]) or _owner_part(record.get("owner"), part)

    where = "person" if scope == "person" else "account"
    resolve.__doc__ = (
        f"last of the {where}'s `past_owners`"
        if past
        else f"{where} field `owner_{part}`, else the {where}'s `owner`"
    )
    return resolve


def _owner_part(owner: Any, part: Literal["name", "email"]) -> str | None:
    """Read an owner given as a name, an id or an email address.

    Profiles carry the owner as one string; an email address serves as both the
    name and the email, anything else only as the name.
    """
    if owner in (None, ""):
        return None
    text = as_text(owner)
    if part == "email":
        return text if "@" in text else None
    return text


def _latest_past_owner(record: Mapping[str, Any]) -> Any:
    # Profiles list past owners oldest first.
    past = record.get("past_owners") or []
    return past[-1] if past else None


def _trigger(key: str) -> Callable[[RunContext], str | None]:
    def resolve(ctx: RunContext) -> str | None:
        if ctx.trigger is None:
            return None
        value = ctx.trigger.get(key)
        if key == "type" and isinstance(value, str):
            return value.replace("_", " ")
        if key == "occurred_at":
            return _date_text(value)
        return as_text(value) or None

    resolve.__doc__ = f"newest signal's `{key}`"
    return resolve


def _date_text(value: Any) -> str | None:
    moment = as_utc(value)
    return None if moment is None else moment.date().isoformat()


def _trigger_attribute(attribute: str) -> Callable[[RunContext], str | None]:
    def resolve(ctx: RunContext) -> str | None:
        if ctx.trigger is None:
            return None
        return _first([(ctx.trigger.get("attributes") or {}).get(attribute)])

    resolve.__doc__ = f"newest signal's attribute `{attribute}`"
    return resolve


def _signal(type_name: str, *attributes: str) -> Callable[[RunContext], str | None]:
    def resolve(ctx: RunContext) -> str | None:
        return _first(ctx.signal_attribute(type_name, name) for name in attributes)

    names = ", else ".join(f"`{name}`" for name in attributes)
    resolve.__doc__ = f"latest `{type_name}` signal's attribute {names}"
    return resolve


def _output(name: str) -> Callable[[RunContext], str | None]:
    def resolve(ctx: RunContext) -> str | None:
        value = ctx.output_value(name)
        return None if value is None else as_text(value)

    return resolve


def _var(
    name: str,
    group: VariableGroup,
    description: str,
    example: str,
    resolve: Callable[[RunContext], str | None],
) -> Variable:
    return Variable(name, group, description, example, resolve)


def _out(
    producer: str, output: str, name: str, description: str, example: str
) -> Variable:
    return Variable(
        name, "output", description, example, _output(output), producer, output
    )


CATALOG: tuple[Variable, ...] = (
    _var(
        "First Name", "person", "the person's first name", "Dana", _person("first_name")
    ),
    _var(
        "Last Name", "person", "the person's last name", "Reyes", _person("last_name")
    ),
    _var("Full Name", "person", "first and last name", "Dana Reyes", _full_name),
    _var(
        "Email",
        "person",
        "the person's email address",
        "dana@acme.io",
        _person("email"),
    ),
    _var(
        "Current Title",
        "person",
        "the person's job title now",
        "VP Sales",
        _person("title", "current_title"),
    ),
    _var(
        "Previous Title",
        "person",
        "the title the person held before",
        "Sales Director",
        _person("previous_title"),
    ),
    _var(
        "Previous Company",
        "person",
        "the company the person left",
        "Globex",
        _person("previous_company"),
    ),
    _var(
        "Seniority",
        "person",
        "seniority level, such as VP or Director",
        "VP",
        _person("seniority"),
    ),
    _var(
        "Department",
        "person",
        "the person's department",
        "Sales",
        _person("department"),
    ),
    _var(
        "Phone",
        "person",
        "the person's phone number",
        "+1 415 555 0100",
        _person("phone"),
    ),
    _var(
        "LinkedIn URL",
        "person",
        "the person's LinkedIn profile",
        "https://linkedin.com/in/dreyes",
        _person("linkedin_url"),
    ),
    _var(
        "Person Location",
        "person",
        "where the person works",
        "Austin, TX",
        _person("location"),
    ),
    _var(
        "Start Date",
        "person",
        "when the person started in their role",
        "2024-03-04",
        _person("start_date"),
    ),
    _var(
        "Company Name",
        "account",
        "the account's name",
        "Acme",
        _account("name", "company_name"),
    ),
    _var(
        "Company Domain",
        "account",
        "the account's web domain",
        "acme.io",
        _account("domain"),
    ),
    _var(
        "Industry",
        "account",
        "the account's industry",
        "Software",
        _account("industry"),
    ),
    _var(
        "Employee Count",
        "account",
        "number of employees",
        "420",
        _account("employee_count", "employees"),
    ),
    _var(
        "Company Location",
        "account",
        "the account's headquarters",
        "Boston, MA",
        _account("location", "hq_location"),
    ),
    _var(
        "Record Owner",
        "owner",
        "owner of the person's contact or lead record",
        "Sam Lee",
        _owner("person", "name", past=False),
    ),
    _var(
        "Record Owner Email",
        "owner",
        "email of the record owner",
        "sam@yourco.com",
        _owner("person", "email", past=False),
    ),
    _var(
        "Past Record Owner",
        "owner",
        "previous owner of the person's record",
        "Ali Khan",
        _owner("person", "name", past=True),
    ),
    _var(
        "Past Record Owner Email",
        "owner",
        "email of the previous record owner",
        "ali@yourco.com",
        _owner("person", "email", past=True),
    ),
    _var(
        "Account Owner",
        "owner",
        "owner of the account record",
        "Kim Park",
        _owner("account", "name", past=False),
    ),
    _var(
        "Account Owner Email",
        "owner",
        "email of the account owner",
        "kim@yourco.com",
        _owner("account", "email", past=False),
    ),
    _var(
        "Past Account Owner",
        "owner",
        "previous owner of the account",
        "Jo Diaz",
        _owner("account", "name", past=True),
    ),
    _var(
        "Past Account Owner Email",
        "owner",
        "email of the previous account owner",
        "jo@yourco.com",
        _owner("account", "email", past=True),
    ),
    _var(
        "Signal Type",
        "signal",
        "the signal that started this run, in words",
        "job change",
        _trigger("type"),
    ),
    _var(
        "Signal Date",
        "signal",
        "the day that signal happened",
        "2024-05-02",
        _trigger("occurred_at"),
    ),
    _var(
        "Signal Summary",
        "signal",
        "the signal's one-line summary, if it has one",
        "Joined Acme as VP Sales",
        _trigger_attribute("summary"),
    ),
    _var(
        "Funding Amount",
        "signal",
        "amount of the latest funding round",
        "25000000",
        _signal("funding", "amount"),
    ),
    _var(
        "Funding Round",
        "signal",
        "stage of the latest funding round",
        "Series B",
        _signal("funding", "round", "stage"),
    ),
    _var(
        "Investors",
        "signal",
        "investors of the latest funding round",
        "Sequoia",
        _signal("funding", "investors"),
    ),
    _var(
        "Hiring Department",
        "signal",
        "the department hiring fastest",
        "Engineering",
        _signal("hiring_surge", "department"),
    ),
    _var(
        "Open Roles",
        "signal",
        "number of open roles in the hiring surge",
        "35",
        _signal("hiring_surge", "open_roles", "count"),
    ),
    _var(
        "New Technology",
        "signal",
        "the technology the account adopted",
        "Snowflake",
        _signal("new_tech", "technology", "name"),
    ),
    _var(
        "Previous Employer",
        "signal",
        "company the person left, from their job change",
        "Globex",
        _signal("job_change", "previous_company"),
    ),
    _var(
        "Champion Past Company",
        "signal",
        "where a past champion used your product",
        "Initech",
        _signal("past_champion", "previous_company"),
    ),
    _var(
        "Promoted From",
        "signal",
        "the title before the promotion",
        "Sales Manager",
        _signal("promotion", "previous_title"),
    ),
    _out(
        "ai_message",
        "subject",
        "AI Subject",
        "subject line written by the AI message step",
        "Congrats on the Series B",
    ),
    _out(
        "ai_message",
        "body",
        "AI Body",
        "email body written by the AI message step",
        "Hi Dana, ...",
    ),
    _out(
        "crm_upsert",
        "record_id",
        "CRM Record Id",
        "id of the record created or updated in the CRM",
        "0035e00000AbCdE",
    ),
    _out(
        "crm_upsert",
        "object",
        "CRM Object",
        "contact or lead, whichever the CRM step wrote",
        "contact",
    ),
    _out(
        "crm_upsert",
        "created",
        "CRM Record Created",
        "Yes when the CRM step created the record",
        "Yes",
    ),
    _out(
        "assign_owner",
        "owner",
        "Assigned Owner",
        "the owner the assignment step chose",
        "Sam Lee",
    ),
    _out("task", "task_id", "Task Id", "id of the task created", "00T5e00000XyZ"),
    _out(
        "sequence",
        "prospect_id",
        "Sequence Prospect Id",
        "the prospect's id in the sequencing tool",
        "8812",
    ),
    _out(
        "sequence",
        "enrollment_id",
        "Sequence Enrollment Id",
        "id of the sequence enrollment",
        "55120",
    ),
    _out(
        "webhook",
        "status",
        "Webhook Status",
        "HTTP status code the webhook answered with",
        "200",
    ),
)

BY_NAME: dict[str, Variable] = {variable.name: variable for variable in CATALOG}
OUTPUT_NAMES: frozenset[str] = frozenset(
    variable.output for variable in CATALOG if variable.output is not None
)
"""Output names of built-in steps; webhook response fields may not use them."""

PROFILE_FIELD_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,99}$")
SIGNAL_ATTRIBUTE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")


def outputs_of(kind: StepKindName) -> tuple[Variable, ...]:
    """Return the output variables a step kind provides."""
    return tuple(variable for variable in CATALOG if variable.producer == kind)


_GROUP_TITLES: dict[VariableGroup, str] = {
    "person": "Person",
    "account": "Account",
    "owner": "Owners",
    "signal": "Signals",
    "output": "Outputs of earlier steps",
}


def catalog_markdown() -> str:
    """Render the catalog as the Markdown tables of `docs/variables.md`."""
    lines: list[str] = []
    for group, title in _GROUP_TITLES.items():
        lines += [f"### {title}", ""]
        if group == "output":
            lines += ["| variable | produced by | output | meaning | example |"]
            lines += ["|---|---|---|---|---|"]
        else:
            lines += ["| variable | meaning | read from | example |"]
            lines += ["|---|---|---|---|"]
        for variable in CATALOG:
            if variable.group != group:
                continue
            cells = [f"`${variable.name}`"]
            if group == "output":
                cells += [f"`{variable.producer}`", f"`{variable.output}`"]
                cells += [variable.description, f"`{variable.example}`"]
            else:
                cells += [
                    variable.description,
                    variable.source,
                    f"`{variable.example}`",
                ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
