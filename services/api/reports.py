"""Folding the events of a test or dry run into a report per prospect and step.

Events arrive in any order across the three topics they come from; the fold keeps
the latest attempt of each step and is indifferent to duplicates, so it gives the
same report whatever order and however many times the events were recorded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from services.api.payloads import ProspectOutcome, RunReport, StepOutcome
from services.api.testruns import TrialCommand, TrialEvent
from signalflow.workflow import StepPathError, Workflow

RUN_STATUS = {"OK": "ok", "ERROR": "error"}
STEP_FIELDS = (
    "step_id",
    "action_type",
    "attempt",
    "status",
    "retryable",
    "error",
    "outputs",
    "finished_at",
)


@dataclass
class _Prospect:
    run_id: str
    person_key: str = ""
    account_key: str = ""
    enrolled_at: str | None = None
    end: dict[str, Any] | None = None
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)

    def take_identity(self, data: dict[str, Any]) -> None:
        self.person_key = data.get("person_key") or self.person_key
        self.account_key = data.get("account_key") or self.account_key
        self.enrolled_at = data.get("enrolled_at") or self.enrolled_at

    def take_step(self, data: dict[str, Any]) -> None:
        known = self.steps.get(data["step_id"])
        if known is None or data["attempt"] >= known["attempt"]:
            self.steps[data["step_id"]] = data


def fold_report(
    command: TrialCommand, events: Iterable[TrialEvent], workflow: Workflow | None
) -> RunReport:
    """Build the report of `command` from its events.

    `workflow` is the version the run used; it names the steps, and is None when
    that version is no longer known.
    """
    prospects: dict[str, _Prospect] = {}
    for event in events:
        prospect = prospects.setdefault(
            event.data["run_id"], _Prospect(event.data["run_id"])
        )
        prospect.take_identity(event.data)
        if event.kind == "step":
            prospect.take_step(event.data)
        elif event.kind == "run":
            prospect.end = event.data
    outcomes = [_outcome(prospect, workflow) for prospect in prospects.values()]
    return RunReport(
        command_id=command.command_id,
        mode="DRY_RUN" if command.mode == "DRY_RUN" else "TEST",
        workflow_id=command.workflow_id,
        workflow_version=command.workflow_version,
        limit=command.limit,
        issued_at=command.issued_at,
        enrolled=len(outcomes),
        finished=sum(outcome.status != "running" for outcome in outcomes),
        ok=sum(outcome.status == "ok" for outcome in outcomes),
        errors=sum(outcome.status == "error" for outcome in outcomes),
        prospects=outcomes,
    )


def _outcome(prospect: _Prospect, workflow: Workflow | None) -> ProspectOutcome:
    end = prospect.end or {}
    steps = sorted(prospect.steps.values(), key=lambda step: step["finished_at"])
    return ProspectOutcome.model_validate(
        {
            "run_id": prospect.run_id,
            "person_key": prospect.person_key,
            "account_key": prospect.account_key,
            "status": RUN_STATUS.get(str(end.get("status")), "running"),
            "enrolled_at": prospect.enrolled_at,
            "ended_at": end.get("ended_at"),
            "failed_step": end.get("failed_step"),
            "error": end.get("error"),
            "steps": [_step_outcome(step, workflow) for step in steps],
        }
    )


def _step_outcome(data: dict[str, Any], workflow: Workflow | None) -> StepOutcome:
    name, kind = _step_label(data["step_id"], workflow)
    fields = {key: data[key] for key in STEP_FIELDS}
    return StepOutcome.model_validate({**fields, "step_name": name, "step_kind": kind})


def _step_label(
    step_id: str, workflow: Workflow | None
) -> tuple[str | None, str | None]:
    if workflow is None:
        return None, None
    try:
        step = workflow.step_at(step_id)
    except StepPathError:
        return None, None
    return step.name, getattr(step, "kind", None)
