"""The workflow model: audiences, workflows, steps, templates and their evaluation.

Shared by the api (validation on save), the matcher (audience evaluation), the
dispatcher (branch conditions, step navigation) and the action services (template
rendering). Pure data and functions: nothing here talks to Kafka or Redis.
"""

from signalflow.workflow.errors import (
    DefinitionError,
    FieldProblem,
    ReferenceProblem,
    TemplateSyntaxError,
    error_list,
)
from signalflow.workflow.filters import Filter, FilterNode
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
    "CATALOG",
    "STEP_KINDS",
    "Audience",
    "DefinitionError",
    "FieldProblem",
    "Filter",
    "FilterNode",
    "Limits",
    "ReferenceProblem",
    "Reenrollment",
    "RunContext",
    "Schedule",
    "Step",
    "StepBase",
    "StepPathError",
    "Template",
    "TemplateSyntaxError",
    "Workflow",
    "check_references",
    "error_list",
    "parse_template",
    "validate_audience",
    "validate_workflow",
]
