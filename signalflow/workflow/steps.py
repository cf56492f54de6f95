"""Workflow steps: one kind per action, each with typed parameters (`params`).

A step is `{"kind": ..., "name": ..., "on_error": "stop", "max_attempts": 5,
"params": {...}}`. Each kind declares the action service that runs it
(`action_type`, None for `delay` and `branch`, which the dispatcher runs itself) and
the outputs it produces, which later steps read as template variables.

Template fields are validated when the step is: unknown variables and malformed
references are reported at the field. Whether an output is produced by an earlier
step is a whole-workflow question, checked in `signalflow.workflow.workflow`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from signalflow.topics import ActionType
from signalflow.workflow.errors import user_error
from signalflow.workflow.filters import Filter
from signalflow.workflow.params import (
    AccountOwner,
    AccountOwnerField,
    AiMessageParams,
    AssignOwnerParams,
    CrmFieldName,
    CrmUpdateParams,
    CrmUpsertParams,
    DelayParams,
    EmailParams,
    HttpMethod,
    OwnerChoice,
    Params,
    PastAccountOwner,
    PastRecordOwner,
    PersonRecipient,
    Recipient,
    RecordOwner,
    RecordOwnerField,
    RoundRobin,
    SequenceParams,
    SlackChannel,
    SlackGroup,
    SlackParams,
    SpecificUser,
    TaskParams,
    WebhookParams,
    WeightedUser,
)
from signalflow.workflow.template_fields import TemplateSource

# The parameter models are defined in `params` and re-exported here, beside the
# steps that carry them.
__all__ = [
    "STEP_KINDS",
    "UNION_TAGS",
    "AccountOwner",
    "AccountOwnerField",
    "AiMessageParams",
    "AiMessageStep",
    "AssignOwnerParams",
    "AssignOwnerStep",
    "BranchParams",
    "BranchStep",
    "CrmFieldName",
    "CrmUpdateParams",
    "CrmUpdateStep",
    "CrmUpsertParams",
    "CrmUpsertStep",
    "DelayParams",
    "DelayStep",
    "EmailParams",
    "EmailStep",
    "HttpMethod",
    "OwnerChoice",
    "Params",
    "PastAccountOwner",
    "PastRecordOwner",
    "PersonRecipient",
    "Recipient",
    "RecordOwner",
    "RecordOwnerField",
    "RoundRobin",
    "SequenceParams",
    "SequenceStep",
    "SlackChannel",
    "SlackGroup",
    "SlackParams",
    "SlackStep",
    "SpecificUser",
    "Step",
    "StepBase",
    "TaskParams",
    "TaskStep",
    "TemplateSource",
    "WebhookParams",
    "WebhookStep",
    "WeightedUser",
]


class StepBase(BaseModel):
    """What every step has: an optional name, error policy and retry budget."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    action_type: ClassVar[ActionType | None] = None
    outputs: ClassVar[tuple[str, ...]] = ()

    # Each kind narrows these: its literal tag and its parameter model.
    kind: str
    params: Params
    name: str | None = Field(default=None, min_length=1, max_length=80)
    on_error: Literal["stop", "continue"] = "stop"
    max_attempts: int = Field(default=5, ge=1, le=20)

    @field_validator("name")
    @classmethod
    def _name_not_an_id(cls, value: str | None) -> str | None:
        if value is not None and (re.match(r"^\d", value) or ":" in value):
            raise user_error(
                "Step names cannot start with a digit or contain ':'; got {value!r}.",
                value=value,
            )
        return value

    def produces(self) -> tuple[str, ...]:
        """Return the names of the outputs this step reports when it succeeds."""
        return self.outputs

    def templates(self) -> Iterator[tuple[tuple[str | int, ...], TemplateSource]]:
        """Yield every template of this step with its path below the step."""
        yield from _templates_in(self.params, ("params",))


def _templates_in(
    value: Any, loc: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], TemplateSource]]:
    if isinstance(value, TemplateSource):
        yield loc, value
    elif isinstance(value, BaseModel) and not isinstance(value, StepBase):
        for name, info in type(value).model_fields.items():
            yield from _templates_in(getattr(value, name), (*loc, info.alias or name))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _templates_in(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _templates_in(item, (*loc, index))


class CrmUpsertStep(StepBase):
    """Create or update the prospect in the CRM."""

    action_type = ActionType.CRM_UPSERT
    outputs = ("record_id", "object", "created")
    kind: Literal["crm_upsert"] = "crm_upsert"
    params: CrmUpsertParams = Field(default_factory=CrmUpsertParams)


class AssignOwnerStep(StepBase):
    """Choose and write the record's owner."""

    action_type = ActionType.ASSIGN_OWNER
    outputs = ("owner",)
    kind: Literal["assign_owner"] = "assign_owner"
    params: AssignOwnerParams


class SlackStep(StepBase):
    """Notify people or channels in Slack."""

    action_type = ActionType.SLACK
    kind: Literal["slack"] = "slack"
    params: SlackParams


class EmailStep(StepBase):
    """Notify people by email."""

    action_type = ActionType.EMAIL
    kind: Literal["email"] = "email"
    params: EmailParams


class TaskStep(StepBase):
    """Create a task in the CRM."""

    action_type = ActionType.TASK
    outputs = ("task_id",)
    kind: Literal["task"] = "task"
    params: TaskParams


class DelayStep(StepBase):
    """Wait; the dispatcher runs it through the delay topics."""

    kind: Literal["delay"] = "delay"
    params: DelayParams


class WebhookStep(StepBase):
    """Call an HTTP endpoint."""

    action_type = ActionType.WEBHOOK
    outputs = ("status",)
    kind: Literal["webhook"] = "webhook"
    params: WebhookParams

    def produces(self) -> tuple[str, ...]:
        return self.outputs + tuple(self.params.response_fields)


class AiMessageStep(StepBase):
    """Generate a personal subject and body."""

    action_type = ActionType.AI_MESSAGE
    outputs = ("subject", "body")
    kind: Literal["ai_message"] = "ai_message"
    params: AiMessageParams = Field(default_factory=AiMessageParams)


class SequenceStep(StepBase):
    """Enroll the prospect in a sequence."""

    action_type = ActionType.SEQUENCE
    outputs = ("prospect_id", "enrollment_id")
    kind: Literal["sequence"] = "sequence"
    params: SequenceParams


class CrmUpdateStep(StepBase):
    """Write CRM fields of the prospect or the account."""

    action_type = ActionType.CRM_UPDATE
    kind: Literal["crm_update"] = "crm_update"
    params: CrmUpdateParams


class BranchParams(Params):
    """Run `then` when the condition holds for the prospect, `else` otherwise.

    The condition uses the audience filter language and is evaluated on the run's
    snapshot of the prospect. After either arm the run continues after the branch.
    """

    condition: Filter | None = Field(default=None, validate_default=True)
    then: list[Step] = Field(default_factory=list)
    else_: list[Step] = Field(default_factory=list, alias="else")

    @field_validator("condition")
    @classmethod
    def _has_condition(cls, value: Any) -> Any:
        if value is None:
            raise user_error("A branch needs a condition.")
        return value

    @model_validator(mode="after")
    def _has_steps(self) -> BranchParams:
        if not self.then and not self.else_:
            raise user_error("A branch needs steps in 'then', 'else' or both.")
        return self


class BranchStep(StepBase):
    """Choose between two lists of steps; the dispatcher evaluates the condition."""

    kind: Literal["branch"] = "branch"
    params: BranchParams

    def arm(self, taken: bool) -> list[Step]:
        """Return the steps of the arm chosen by the condition's result."""
        return self.params.then if taken else self.params.else_


Step = Annotated[
    CrmUpsertStep
    | AssignOwnerStep
    | SlackStep
    | EmailStep
    | TaskStep
    | DelayStep
    | WebhookStep
    | AiMessageStep
    | SequenceStep
    | CrmUpdateStep
    | BranchStep,
    Field(discriminator="kind"),
]
"""Any step, told apart by its `kind`."""

BranchParams.model_rebuild()
BranchStep.model_rebuild()

STEP_KINDS: dict[str, type[StepBase]] = {
    "crm_upsert": CrmUpsertStep,
    "assign_owner": AssignOwnerStep,
    "slack": SlackStep,
    "email": EmailStep,
    "task": TaskStep,
    "delay": DelayStep,
    "webhook": WebhookStep,
    "ai_message": AiMessageStep,
    "sequence": SequenceStep,
    "crm_update": CrmUpdateStep,
    "branch": BranchStep,
}
"""Every step kind and its class; `cls.action_type` is None for dispatcher steps."""

UNION_TAGS: frozenset[str] = frozenset(
    {
        "record_owner",
        "past_record_owner",
        "account_owner",
        "past_account_owner",
        "specific_user",
        "slack_channel",
        "slack_group",
        "record_owner_field",
        "account_owner_field",
        "round_robin",
        "realtime",
        "daily",
        "weekly",
        "monthly",
    }
)
"""Kinds of the smaller unions (recipients, owners, schedules, re-enrollment)."""
