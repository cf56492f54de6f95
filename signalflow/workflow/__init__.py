"""The workflow model: audiences, workflows, steps, templates and their evaluation.

Shared by the api (validation on save), the matcher (audience evaluation), the
dispatcher (branch conditions, step navigation) and the action services (template
rendering). Pure data and functions: nothing here talks to Kafka or Redis.

- `workflow`: `Audience`, `Workflow` (navigation by step id), `check_references`,
  `validate_workflow` / `validate_audience` (raise `DefinitionError`);
- `filters`: the audience filter language; `evaluate`: matching, explanations,
  `next_change`, `state_from_enrollment`;
- `steps`, `schedule`: step kinds and their parameters, schedules and limits;
- `variables`, `templates`: the variable catalog, `RunContext`, parsing and
  rendering (see `docs/variables.md`);
- `prebuilt`: ready-made campaigns; `errors`: errors and `error_list()`.
"""

from signalflow.workflow.errors import (
    DefinitionError,
    FieldProblem,
    ReferenceProblem,
    TemplateSyntaxError,
    error_list,
)
from signalflow.workflow.evaluate import (
    CompiledFilter,
    Evaluation,
    PredicateOutcome,
    ProspectState,
    SignalFact,
    compile_filter,
    evaluate,
    next_change,
    state_from_enrollment,
)
from signalflow.workflow.filters import KNOWN_SIGNAL_TYPES, Filter, FilterNode
from signalflow.workflow.prebuilt import CAMPAIGNS, PrebuiltCampaign, instantiate
from signalflow.workflow.schedule import Limits, Reenrollment, Schedule
from signalflow.workflow.steps import STEP_KINDS, Step, StepBase
from signalflow.workflow.templates import Template, parse_template
from signalflow.workflow.variables import CATALOG, RunContext
from signalflow.workflow.workflow import (
    Audience,
    StepPathError,
    Workflow,
    check_references,
    validate_audience,
    validate_workflow,
)

__all__ = [
    "CAMPAIGNS",
    "CATALOG",
    "KNOWN_SIGNAL_TYPES",
    "STEP_KINDS",
    "Audience",
    "CompiledFilter",
    "DefinitionError",
    "Evaluation",
    "FieldProblem",
    "Filter",
    "FilterNode",
    "Limits",
    "PrebuiltCampaign",
    "PredicateOutcome",
    "ProspectState",
    "ReferenceProblem",
    "Reenrollment",
    "RunContext",
    "Schedule",
    "SignalFact",
    "Step",
    "StepBase",
    "StepPathError",
    "Template",
    "TemplateSyntaxError",
    "Workflow",
    "check_references",
    "compile_filter",
    "error_list",
    "evaluate",
    "instantiate",
    "next_change",
    "parse_template",
    "state_from_enrollment",
    "validate_audience",
    "validate_workflow",
]
