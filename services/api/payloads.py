"""The JSON bodies of the api's requests and answers (besides the definitions
themselves, which are the model's `Audience` and `Workflow`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from signalflow.workflow import Audience, Workflow

Mode = Literal["TEST", "DRY_RUN"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VersionInfo(_Body):
    """One saved version of an audience or workflow."""

    version: int = Field(ge=1, examples=[3])
    saved_at: datetime
    deleted: bool = Field(description="True for the version that deleted it.")
    status: Literal["draft", "active", "paused"] | None = Field(
        default=None, description="For workflows: the status this version saved."
    )


class Deleted(_Body):
    """The answer to a deletion: the version that records it."""

    id: str
    version: int = Field(ge=1, description="The version marked deleted.")


class ActivateRequest(_Body):
    """How an activation treats prospects who already match."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"execution_timing": "future_only"}]},
    )

    execution_timing: Literal["all_current", "future_only"] = Field(
        description="all_current enrolls everyone matching now (within the limits);"
        " future_only only those who start to match after activation."
    )


class RunRequest(_Body):
    """A test or dry run on a sample of prospects."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"limit": 10}]}
    )

    limit: int = Field(
        default=10, ge=1, le=100, description="At most this many prospects."
    )


class RunStarted(_Body):
    """A test or dry run was sent to the matcher."""

    command_id: str = Field(examples=["cmd_5d1c0f0e8a7b4c39a1b2c3d4e5f60718"])
    mode: Mode
    workflow_id: str
    workflow_version: int
    limit: int
    issued_at: datetime
    results_url: str = Field(description="Where the results appear as they arrive.")
    events_url: str = Field(description="The same results as server-sent events.")


class StepOutcome(_Body):
    """The latest attempt of one step for one prospect."""

    step_id: str = Field(examples=["2.then.0"])
    step_name: str | None = None
    step_kind: str | None = None
    action_type: str
    attempt: int
    status: Literal["OK", "ERROR", "SKIPPED"]
    retryable: bool
    error: str | None
    outputs: dict[str, str] = Field(
        description="What the step produced; in a dry run, what it would send."
    )
    finished_at: datetime


class ProspectOutcome(_Body):
    """One prospect of a test or dry run: each step's result as it arrived."""

    run_id: str
    person_key: str
    account_key: str
    status: Literal["running", "ok", "error"]
    enrolled_at: datetime | None = None
    ended_at: datetime | None = None
    failed_step: str | None = None
    error: str | None = None
    steps: list[StepOutcome]


class RunReport(_Body):
    """Where a test or dry run stands, per prospect and step."""

    command_id: str
    mode: Mode
    workflow_id: str
    workflow_version: int
    limit: int
    issued_at: datetime
    enrolled: int = Field(description="Prospects that entered the run so far.")
    finished: int
    ok: int
    errors: int
    prospects: list[ProspectOutcome]


class PreviewResult(_Body):
    """Who matches the workflow's audience now, across every matcher partition."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "command_id": "cmd_5d1c0f0e8a7b4c39a1b2c3d4e5f60718",
                    "workflow_id": "wf_funding",
                    "matching": 132,
                    "examples": ["person-17", "person-42"],
                    "partitions": 6,
                }
            ]
        },
    )

    command_id: str
    workflow_id: str
    matching: int = Field(ge=0, description="How many prospects match now.")
    examples: list[str] = Field(
        max_length=20, description="Up to 20 person keys of matching prospects."
    )
    partitions: int = Field(description="How many matcher partitions answered.")


class Rejection(_Body):
    """One item of an ingested batch that was not accepted."""

    index: int = Field(ge=0, description="Position of the item in the batch.")
    path: str = Field(description="The offending field; empty for the whole item.")
    reason: str


class IngestReport(_Body):
    """What happened to a batch of signals or profiles."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "accepted": 2,
                    "rejected": [
                        {
                            "index": 1,
                            "path": "person_key",
                            "reason": "a PERSON-scoped signal needs the person's key",
                        }
                    ],
                }
            ]
        },
    )

    accepted: int = Field(ge=0, description="Items published to Kafka.")
    rejected: list[Rejection]


class PrebuiltSummary(_Body):
    """A ready-made campaign: an audience and a workflow to start from."""

    slug: str
    title: str
    description: str


class Instantiated(_Body):
    """The audience and workflow created from a prebuilt campaign (version 1)."""

    audience: Audience
    workflow: Workflow


class Health(_Body):
    """Whether the api and what it depends on are running."""

    service: Literal["api"] = "api"
    state: Literal["running", "starting", "degraded", "stopped"]
    components: dict[str, bool]


class WorkflowMetrics(_Body):
    """The monitoring figures of one workflow, as the metrics service keeps them."""

    workflow_id: str
    mode: Literal["LIVE", "TEST", "DRY_RUN"]
    pending: int = Field(description="Matching prospects not yet enrolled.")
    held_by_account_cap: int
    held_by_rep_cap: int
    expired: int
    last_run_at: datetime | None
    last_run: dict[str, int] = Field(
        description="OK and errors of the runs since the last scheduled run."
    )
    totals: dict[str, int]
    steps: dict[str, dict[str, int]]
    done_by_hour: dict[str, int] = Field(description="Runs finished per hour.")
    recent_errors: list[dict[str, Any]]
