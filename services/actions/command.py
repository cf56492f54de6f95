"""A step command as the actions read it, and the outcome they report for it.

`StepCommand` wraps a decoded `step_command` record (and keeps its encoded bytes,
which the result echoes so the dispatcher needs no per-run state). `Outcome` is
what performing it came to; `result_record()` turns the pair into the
`step_result` record.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

from pydantic import ValidationError

from services.actions.errors import ActionError, PermanentError
from signalflow.topics import ActionType
from signalflow.workflow.steps import STEP_KINDS, Params, StepBase
from signalflow.workflow.variables import as_text

Status = Literal["OK", "ERROR", "SKIPPED"]
Mode = Literal["LIVE", "TEST", "DRY_RUN"]


class InvalidParamsError(PermanentError):
    """A command's parameters do not fit its step kind; no retry can fix that."""


@dataclass(frozen=True)
class StepCommand:
    """One decoded step command and the bytes it was decoded from."""

    record: Mapping[str, Any]
    encoded: bytes

    @property
    def run_id(self) -> str:
        return str(self.record["run_id"])

    @property
    def step_id(self) -> str:
        return str(self.record["step_id"])

    @property
    def idempotency_key(self) -> str:
        return str(self.record["idempotency_key"])

    @property
    def attempt(self) -> int:
        return int(self.record["attempt"])

    @property
    def action_type(self) -> str:
        return str(self.record["action_type"])

    @property
    def mode(self) -> Mode:
        mode: Mode = self.record["mode"]
        return mode

    @property
    def workflow_id(self) -> str:
        return str(self.record["workflow_id"])

    @property
    def workflow_version(self) -> int:
        return int(self.record["workflow_version"])

    @property
    def enrollment(self) -> Mapping[str, Any]:
        enrollment: Mapping[str, Any] = self.record["enrollment"]
        return enrollment

    @property
    def outputs(self) -> Mapping[str, str]:
        outputs: Mapping[str, str] = self.record.get("outputs") or {}
        return outputs

    def params(self, action: ActionType) -> Params:
        """Validate the command's parameters as the step kind of `action` declares.

        Accepts the step's `params` object or the whole step (`{"kind": ...,
        "params": {...}}`). Raises InvalidParamsError saying what does not fit.
        Every run of a step carries the same text, so validated parameters are
        cached by it (the models are frozen).
        """
        text = self.record.get("params") or "{}"
        try:
            return parse_params(action, text)
        except InvalidParamsError as error:
            raise InvalidParamsError(
                f"the parameters of step {self.step_id!r} do not fit a "
                f"{action} step: {error}"
            ) from None


@lru_cache(maxsize=4096)
def parse_params(action: ActionType, text: str) -> Params:
    """The parameters in `text` (JSON) validated for `action`'s step kind.

    Raises InvalidParamsError naming the first field that does not fit.
    """
    step_class = step_class_for(action)
    document = _params_document(text)
    try:
        if document.get("kind") in STEP_KINDS:
            step = step_class.model_validate(document)
            params: Params = step.params
            return params
        return _params_class(step_class).model_validate(document)
    except ValidationError as error:
        raise InvalidParamsError(_first_problem(error)) from None


def _params_document(text: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except ValueError as error:
        raise InvalidParamsError(
            f"expected the parameters as JSON, got {text[:80]!r}"
        ) from error
    if not isinstance(document, dict):
        raise InvalidParamsError(
            f"expected a JSON object of parameters, got {text[:80]!r}"
        )
    return document


@dataclass(frozen=True)
class Outcome:
    """How performing one step attempt ended.

    `outputs` are text; `error`, `retryable` and `retry_after_ms` describe an
    ERROR. A SKIPPED step says why in its `reason` output.
    """

    status: Status
    outputs: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    retryable: bool = False
    retry_after_ms: int | None = None

    @classmethod
    def ok(cls, outputs: Mapping[str, Any] | None = None) -> Outcome:
        """A performed step with its outputs (values rendered as template text)."""
        return cls("OK", _texts(outputs or {}))

    @classmethod
    def skipped(cls, reason: str, outputs: Mapping[str, Any] | None = None) -> Outcome:
        """A step that did not apply, with the reason as the `reason` output."""
        return cls("SKIPPED", {**_texts(outputs or {}), "reason": reason})

    @classmethod
    def failed(cls, error: ActionError) -> Outcome:
        """A failed step, retryable or not as the error's class says."""
        retry_after_s = getattr(error, "retry_after_s", None)
        return cls(
            "ERROR",
            error=str(error),
            retryable=error.retryable,
            retry_after_ms=None
            if retry_after_s is None or not error.retryable
            else int(retry_after_s * 1000),
        )


def result_record(
    command: StepCommand, outcome: Outcome, *, finished_at: datetime | None = None
) -> dict[str, Any]:
    """The `step_result` record answering `command` with `outcome`."""
    return {
        "run_id": command.run_id,
        "step_id": command.step_id,
        "idempotency_key": command.idempotency_key,
        "attempt": command.attempt,
        "status": outcome.status,
        "retryable": outcome.retryable,
        "retry_after_ms": outcome.retry_after_ms,
        "error": outcome.error,
        "outputs": dict(outcome.outputs),
        "finished_at": finished_at or datetime.now(UTC),
        "command": command.encoded,
    }


def step_class_for(action: ActionType) -> type[StepBase]:
    """The step kind that runs on `action`'s service."""
    for step_class in STEP_KINDS.values():
        if step_class.action_type == action:
            return step_class
    raise KeyError(f"no step kind runs on the {action!r} action service")


def _params_class(step_class: type[StepBase]) -> type[Params]:
    annotation = step_class.model_fields["params"].annotation
    if not isinstance(annotation, type) or not issubclass(annotation, Params):
        raise TypeError(f"{step_class.__name__}.params is not a model: {annotation!r}")
    return annotation


def _first_problem(error: ValidationError) -> str:
    problem = error.errors()[0]
    path = ".".join(str(part) for part in problem["loc"]) or "(the parameters)"
    return f"{path}: {problem['msg']}"


def _texts(values: Mapping[str, Any]) -> dict[str, str]:
    return {name: as_text(value) for name, value in values.items()}
