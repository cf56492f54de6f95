"""Audiences and workflows: the definitions revenue operations save.

A `Workflow` names its audience, schedule, limits, execution timing,
re-enrollment rule and an ordered list of steps. A step's id is its path:
`"0"`, `"1"`, ... at the top level and `"2.then.0"`, `"2.else.1"` inside a branch.
The dispatcher keeps no per-run state and moves a run forward from a step id with
`first_path()`, `next_path()` and `branch_path()`.

Validation on save: every model check reports its field path. The whole-workflow
check that each output a template reads is produced by an earlier step on every
path runs here; checks that need other saved objects (the audience exists,
audiences do not contain each other) are in `check_references()`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from signalflow.workflow.errors import (
    DefinitionError,
    FieldProblem,
    ReferenceProblem,
    problems_of,
    raise_at,
    user_error,
)
from signalflow.workflow.filters import Filter, FilterNode, InAudience
from signalflow.workflow.schedule import (
    NEVER,
    Limits,
    Realtime,
    Reenrollment,
    Schedule,
)
from signalflow.workflow.steps import BranchStep, Step, StepBase
from signalflow.workflow.templates import parse_template, qualify_steps
from signalflow.workflow.variables import STEP_ID_PATTERN

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$"
MAX_STEPS = 100
MAX_BRANCH_DEPTH = 5

Loc = tuple[str | int, ...]


class StepPathError(LookupError):
    """A step id that does not name a step of this workflow (a caller's bug)."""


class Audience(BaseModel):
    """Who qualifies for a campaign: a named filter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=120)
    description: str = Field(default="", max_length=2_000)
    filter: Filter
    version: int | None = Field(default=None, ge=1)

    def reads(self, audiences: Mapping[str, Audience] | None = None) -> set[str]:
        """The state keys this audience depends on (see `FilterNode.reads`)."""
        return self.filter.reads(audiences)


class Workflow(BaseModel):
    """A campaign: who enters (`audience_id`), when, how many, and what happens.

    `version` is assigned by the api when it saves the workflow; a run finishes on
    the version it started with.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=120)
    description: str = Field(default="", max_length=2_000)
    audience_id: str = Field(pattern=ID_PATTERN)
    schedule: Schedule = Field(default_factory=Realtime)
    limits: Limits = Field(default_factory=Limits)
    timing: Literal["all_current", "future_only"] = "future_only"
    reenrollment: Reenrollment = NEVER
    steps: list[Step]
    status: Literal["draft", "active", "paused"] = "draft"
    version: int | None = Field(default=None, ge=1)

    @field_validator("steps")
    @classmethod
    def _has_steps(cls, value: list[StepBase]) -> list[StepBase]:
        if not value:
            raise user_error("A workflow needs at least one step.")
        return value

    @model_validator(mode="after")
    def _steps_fit_together(self) -> Workflow:
        problems = list(_shape_problems(self.steps))
        if not problems:
            problems = list(_OutputCheck(self).run())
        raise_at("Workflow", problems)
        return self

    # navigation

    def step_at(self, path: str) -> StepBase:
        """Return the step a path names. Raises `StepPathError` for any other path."""
        steps, index = self._container(path)
        step: StepBase = steps[index]
        return step

    def first_path(self) -> str:
        """The id of the step every run starts with."""
        return "0"

    def next_path(self, path: str) -> str | None:
        """The id of the step after `path`, climbing out of branches; None at the end.

        For a branch step this is what follows the whole branch; to enter one of
        its arms use `branch_path()`.
        """
        steps, index = self._container(path)
        if index + 1 < len(steps):
            return _sibling(path, index + 1)
        parent = _parent(path)
        return None if parent is None else self.next_path(parent)

    def branch_path(self, path: str, taken: bool) -> str | None:
        """The id of the first step of the chosen arm of the branch at `path`.

        When that arm is empty, the id of what follows the branch (None at the end).
        Raises `StepPathError` when `path` is not a branch.
        """
        step = self.step_at(path)
        if not isinstance(step, BranchStep):
            raise StepPathError(
                f"expected a branch step at {path!r}, got {step.kind!r}"
            )
        if step.arm(taken):
            return f"{path}.{'then' if taken else 'else'}.0"
        return self.next_path(path)

    def paths(self) -> Iterator[tuple[str, StepBase]]:
        """Yield every step with its id, in document order (arms after the branch)."""
        yield from _paths(self.steps, "")

    def step_names(self) -> dict[str, str]:
        """Map each named step's name to its id, for `${<step name>: <output>}`."""
        return {step.name: path for path, step in self.paths() if step.name}

    def command_params(self, path: str) -> dict[str, Any]:
        """The parameters to send with the step at `path`, as JSON-ready data.

        References to a step by name (`${Research: AI Body}`) are rewritten to
        its id, since an action service reads outputs keyed by step id and never
        sees the workflow. Raises `StepPathError` for an unknown path.
        """
        step = self.step_at(path)
        params: dict[str, Any] = step.params.model_dump(mode="json", by_alias=True)
        names = self.step_names()
        for loc, source in step.templates():
            qualified = qualify_steps(
                str(source), names, markup=source.markup == "markup"
            )
            _set_at(params, loc[1:], qualified)
        return params

    def _container(self, path: str) -> tuple[list[Any], int]:
        if not isinstance(path, str) or not STEP_ID_PATTERN.match(path):
            raise StepPathError(f"expected a step id such as '2.then.0', got {path!r}")
        parts = path.split(".")
        steps: list[Any] = self.steps
        for index, arm in zip(parts[0::2], [*parts[1::2], None], strict=True):
            position = int(index)
            if position >= len(steps):
                raise StepPathError(f"workflow {self.id!r} has no step {path!r}")
            if arm is None:
                return steps, position
            step = steps[position]
            if not isinstance(step, BranchStep):
                raise StepPathError(f"step {path!r} enters a step that is not a branch")
            steps = step.arm(arm == "then")
        raise StepPathError(f"expected a step id such as '2.then.0', got {path!r}")


def _set_at(data: Any, loc: Loc, value: str) -> None:
    for part in loc[:-1]:
        data = data[part]
    data[loc[-1]] = value


def _sibling(path: str, index: int) -> str:
    head, dot, _ = path.rpartition(".")
    return f"{head}{dot}{index}"


def _parent(path: str) -> str | None:
    parts = path.split(".")
    return ".".join(parts[:-2]) if len(parts) > 1 else None


def _paths(steps: list[Any], prefix: str) -> Iterator[tuple[str, StepBase]]:
    for index, step in enumerate(steps):
        path = f"{prefix}{index}"
        yield path, step
        if isinstance(step, BranchStep):
            yield from _paths(step.params.then, f"{path}.then.")
            yield from _paths(step.params.else_, f"{path}.else.")


# --- whole-workflow checks -------------------------------------------------------


def _shape_problems(steps: list[Any]) -> Iterator[tuple[Loc, str]]:
    everything = list(_located(steps, ("steps",), depth=1))
    if len(everything) > MAX_STEPS:
        yield ("steps",), f"A workflow can have at most {MAX_STEPS} steps in all."
    seen: dict[str, Loc] = {}
    for loc, step, depth in everything:
        if depth > MAX_BRANCH_DEPTH:
            yield loc, f"Branches can be nested at most {MAX_BRANCH_DEPTH} deep."
        if step.name is None:
            continue
        if step.name in seen:
            yield (
                (*loc, "name"),
                f"Two steps are named {step.name!r}; names must differ.",
            )
        seen.setdefault(step.name, loc)


def _located(
    steps: list[Any], loc: Loc, *, depth: int
) -> Iterator[tuple[Loc, StepBase, int]]:
    for index, step in enumerate(steps):
        yield (*loc, index), step, depth
        if isinstance(step, BranchStep):
            arm_loc = (*loc, index, "params")
            yield from _located(step.params.then, (*arm_loc, "then"), depth=depth + 1)
            yield from _located(step.params.else_, (*arm_loc, "else"), depth=depth + 1)


@dataclass(frozen=True)
class _Available:
    """What has certainly happened before a step, on every path to it."""

    outputs: frozenset[tuple[str, str]]  # (step kind, output name)
    steps: frozenset[str]  # step ids

    def after(self, path: str, step: StepBase) -> _Available:
        made = {(step.kind, name) for name in step.produces()}
        return _Available(self.outputs | made, self.steps | {path})


class _OutputCheck:
    """Finds template references to outputs that no earlier step surely produced."""

    def __init__(self, workflow: Workflow) -> None:
        self.steps = workflow.steps
        self.by_path = dict(workflow.paths())
        self.by_name = workflow.step_names()
        self.problems: list[tuple[Loc, str]] = []

    def run(self) -> list[tuple[Loc, str]]:
        start = _Available(frozenset(), frozenset())
        self._walk(self.steps, "", ("steps",), start)
        return self.problems

    def _walk(
        self, steps: list[Any], prefix: str, loc: Loc, available: _Available
    ) -> _Available:
        for index, step in enumerate(steps):
            path, step_loc = f"{prefix}{index}", (*loc, index)
            self._check_step(step, step_loc, available)
            if isinstance(step, BranchStep):
                available = self._branch(step, path, step_loc, available)
            else:
                available = available.after(path, step)
        return available

    def _branch(
        self, step: BranchStep, path: str, loc: Loc, available: _Available
    ) -> _Available:
        arms = (*loc, "params")
        then = self._walk(step.params.then, f"{path}.then.", (*arms, "then"), available)
        other = self._walk(
            step.params.else_, f"{path}.else.", (*arms, "else"), available
        )
        both = then.outputs & other.outputs
        return _Available(available.outputs | both, available.steps | {path})

    def _check_step(self, step: StepBase, loc: Loc, available: _Available) -> None:
        for template_loc, source in step.templates():
            markup = source.markup == "markup"
            template = parse_template(str(source), markup=markup)
            for ref in template.refs():
                message = self._missing(ref, available)
                if message:
                    self.problems.append(((*loc, *template_loc), message))

    def _missing(self, ref: Any, available: _Available) -> str | None:
        if ref.kind == "catalog":
            variable = ref.variable
            if variable is None or variable.producer is None:
                return None
            if (variable.producer, variable.output) in available.outputs:
                return None
            return (
                f"${ref.name} comes from {_kind_words(variable.producer)} step, and "
                "no such step runs before this one on every path."
            )
        if ref.kind == "step_output":
            return self._missing_step_output(ref, available)
        return None

    def _missing_step_output(self, ref: Any, available: _Available) -> str | None:
        path = (
            ref.step if STEP_ID_PATTERN.match(ref.step) else self.by_name.get(ref.step)
        )
        if path is None or path not in self.by_path:
            return f"No step is named {ref.step!r}."
        step = self.by_path[path]
        if path not in available.steps:
            return f"Step {ref.step!r} does not run before this one on every path."
        variable = ref.variable
        if variable is not None and variable.producer != step.kind:
            return f"Step {ref.step!r} does not produce {ref.name!r}."
        if ref.output not in step.produces():
            outputs = ", ".join(step.produces()) or "nothing"
            return (
                f"Step {ref.step!r} does not produce {ref.name!r}; it produces "
                f"{outputs}."
            )
        return None


def _kind_words(kind: str) -> str:
    """The step kind with its article: 'an AI message', 'a sequence'."""
    words = {"ai_message": "AI message", "crm_upsert": "CRM create-or-update"}
    text = words.get(kind, kind.replace("_", " "))
    return f"{'an' if text[0] in 'AEIOUaeiou' else 'a'} {text}"


# --- references to other saved objects -------------------------------------------


def check_references(
    definition: Workflow | Audience, audiences: Mapping[str, Audience]
) -> list[FieldProblem]:
    """Return the problems with the saved objects a definition names (empty: fine).

    For a workflow: its audience exists, and every audience a branch condition
    names exists. For an audience: every audience it names exists and none of them
    includes it back (an audience cannot contain itself). `audiences` is the saved
    set; the definition being checked replaces its own saved version.
    """
    if isinstance(definition, Workflow):
        return list(_workflow_references(definition, audiences))
    lookup = {**audiences, definition.id: definition}
    return list(
        _filter_references(definition.filter, ("filter",), lookup, definition.id)
    )


def require_references(
    definition: Workflow | Audience, audiences: Mapping[str, Audience]
) -> None:
    """Like `check_references()`, raising `ReferenceProblem` when there are problems."""
    problems = check_references(definition, audiences)
    if problems:
        raise ReferenceProblem(problems)


def _workflow_references(
    workflow: Workflow, audiences: Mapping[str, Audience]
) -> Iterator[FieldProblem]:
    if workflow.audience_id not in audiences:
        yield FieldProblem(
            "audience_id", f"No saved audience has the id {workflow.audience_id!r}."
        )
    for loc, step, _ in _located(workflow.steps, ("steps",), depth=1):
        if isinstance(step, BranchStep) and step.params.condition is not None:
            where = (*loc, "params", "condition")
            yield from _filter_references(step.params.condition, where, audiences, None)


def _filter_references(
    node: FilterNode, loc: Loc, audiences: Mapping[str, Audience], own_id: str | None
) -> Iterator[FieldProblem]:
    for where, member in _memberships(node, loc):
        path = ".".join(str(part) for part in (*where, "audience_id"))
        target = member.audience_id
        if target not in audiences:
            yield FieldProblem(path, f"No saved audience has the id {target!r}.")
        elif own_id is not None and _reaches(target, own_id, audiences):
            yield FieldProblem(
                path,
                f"Audience {target!r} includes this audience ({own_id!r}) again; "
                "audiences cannot contain themselves.",
            )


def _memberships(node: FilterNode, loc: Loc) -> Iterator[tuple[Loc, InAudience]]:
    if isinstance(node, InAudience):
        yield loc, node
    elif hasattr(node, "of"):
        for index, child in enumerate(node.of):
            yield from _memberships(child, (*loc, "of", index))
    elif hasattr(node, "filter"):
        yield from _memberships(node.filter, (*loc, "filter"))


def _reaches(start: str, goal: str, audiences: Mapping[str, Audience]) -> bool:
    pending, seen = [start], set()
    while pending:
        current = pending.pop()
        if current == goal:
            return True
        if current in seen or current not in audiences:
            continue
        seen.add(current)
        pending.extend(
            member.audience_id
            for _, member in _memberships(audiences[current].filter, ())
        )
    return False


# --- validation entry points for the api -----------------------------------------


def validate_workflow(
    data: Any, *, audiences: Mapping[str, Audience] | None = None
) -> Workflow:
    """Validate a submitted workflow; with `audiences`, check its references too.

    Raises `DefinitionError` listing every problem as a path and a sentence.
    """
    try:
        workflow = Workflow.model_validate(data)
    except ValidationError as exc:
        raise DefinitionError(problems_of(exc, data)) from None
    if audiences is not None:
        require_references(workflow, audiences)
    return workflow


def validate_audience(
    data: Any, *, audiences: Mapping[str, Audience] | None = None
) -> Audience:
    """Validate a submitted audience; with `audiences`, check its references too.

    Raises `DefinitionError` listing every problem as a path and a sentence.
    """
    try:
        audience = Audience.model_validate(data)
    except ValidationError as exc:
        raise DefinitionError(problems_of(exc, data)) from None
    if audiences is not None:
        require_references(audience, audiences)
    return audience
