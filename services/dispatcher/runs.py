"""Moving a run from step to step, with nothing kept between records.

A run travels inside its events. An enrollment starts it; each step command
carries the enrollment, the workflow id and the version the run started on, the
outputs of earlier steps (keyed `<step_id>.<name>`) and the attempts that failed;
each step result carries back the encoded command it answers. So `RunStepper`
decides the next move from one record and the workflow version alone, and any
dispatcher replica can take any partition.

Besides the steps' own outputs, the outputs map keeps the run's bookkeeping under
names no step produces (they start with `_`): `<step_id>._status` (OK, SKIPPED or
ERROR), `<step_id>._error` for a step that failed for good, and `<step_id>._branch`
(`then` or `else`) for a branch. The `run` event's counts and failed step come
from these.

The moves:

- an action step becomes a `step_command` on `actions.<type>`, attempt 1;
- a delay step becomes a `step_result` (OK) of that step, sent to `step-results`
  through the delay tiers, due when the delay is over;
- a branch step is decided here, on the enrollment's snapshot of the prospect;
- a retryable ERROR with attempts left sends the same command again, attempt + 1,
  through the delay tiers after the retry policy's backoff;
- any other ERROR fails the step: its command (with every attempt's error) goes to
  `dead-letters`, and the run ends with an error, or goes on when the step says
  `on_error: continue`;
- after the last step, the run's end is a `run` event on `runs`.

`RunStepper` returns what to produce as `Effect`s and produces nothing itself.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.dispatcher.retry import RetryPolicy, idempotency_key
from signalflow.contracts import Codec
from signalflow.topics import Topics
from signalflow.workflow import Audience, StepBase, Workflow
from signalflow.workflow.evaluate import evaluate, state_from_enrollment
from signalflow.workflow.steps import BranchStep, DelayStep

Record = dict[str, Any]
AudienceLookup = Callable[[], Mapping[str, Audience]]

STATUS = "_status"
ERROR = "_error"
BRANCH = "_branch"
DELAY_ACTION = "delay"


class RunError(ValueError):
    """A record the dispatcher cannot move a run forward from (not retryable):
    a result for a step the workflow version does not have, or one that does not
    answer the command it carries."""


@dataclass(frozen=True, slots=True)
class Effect:
    """One record to produce.

    `due_ms` set: it waits in the delay tiers until then. `dead_letter` set: it
    goes to `dead-letters` as a record of `topic` that failed with that reason,
    and `history` lists the errors before it.
    """

    topic: str
    key: bytes
    value: bytes
    due_ms: int | None = None
    dead_letter: str | None = None
    history: tuple[str, ...] = ()


@dataclass
class _Run:
    """What a run carries from step to step."""

    enrollment: Record
    workflow: Workflow
    mode: str
    started_at_ms: int
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return str(self.enrollment["run_id"])

    @property
    def key(self) -> bytes:
        return self.run_id.encode()


class RunStepper:
    """Decides each run's next move from one enrollment or step result.

    Args:
        codec: encodes the records it returns.
        topics: names the topics they go to.
        policy: the backoff of retryable failures.
        audiences: the saved audiences, for branch conditions that name one.
        rng: the randomness of the backoff's jitter.
    """

    def __init__(
        self,
        codec: Codec,
        topics: Topics,
        policy: RetryPolicy,
        *,
        audiences: AudienceLookup = dict,
        rng: random.Random | None = None,
    ) -> None:
        self._codec = codec
        self._topics = topics
        self._policy = policy
        self._audiences = audiences
        self._rng = rng or random.Random()

    def start(
        self, enrollment: Record, workflow: Workflow, *, now_ms: int
    ) -> list[Effect]:
        """The first moves of the run an enrollment starts on `workflow` (the
        version the enrollment names)."""
        run = _Run(
            enrollment=enrollment,
            workflow=workflow,
            mode=str(enrollment["mode"]),
            started_at_ms=_epoch_ms(enrollment.get("enrolled_at")) or now_ms,
        )
        return self._walk(run, workflow.first_path(), now_ms)

    def advance(
        self, result: Record, command: Record, workflow: Workflow, *, now_ms: int
    ) -> list[Effect]:
        """The moves that follow a step result; `command` is the command it answers
        (decoded from the result) and `workflow` the version the run started on.

        Raises RunError when the result does not fit its command or the workflow.
        """
        step_id = str(command["step_id"])
        _check_answers(result, command)
        step = _step_at(workflow, step_id)
        run = _Run(
            enrollment=command["enrollment"],
            workflow=workflow,
            mode=str(command["mode"]),
            started_at_ms=_epoch_ms(command["run_started_at"]) or now_ms,
            outputs=dict(command.get("outputs") or {}),
        )
        status = str(result["status"])
        if status in ("OK", "SKIPPED"):
            run.outputs.update(
                (f"{step_id}.{name}", value)
                for name, value in (result.get("outputs") or {}).items()
            )
            run.outputs[f"{step_id}.{STATUS}"] = status
            return self._walk(run, workflow.next_path(step_id), now_ms)
        return self._failed_attempt(run, step, result, command, now_ms)

    # moving forward

    def _walk(self, run: _Run, path: str | None, now_ms: int) -> list[Effect]:
        """Decide branches until the next step that waits, or the end."""
        while path is not None:
            step = run.workflow.step_at(path)
            if not isinstance(step, BranchStep):
                return [self._issue(run, path, step, now_ms)]
            taken = self._decide(run, step, now_ms)
            run.outputs[f"{path}.{STATUS}"] = "OK"
            run.outputs[f"{path}.{BRANCH}"] = "then" if taken else "else"
            path = run.workflow.branch_path(path, taken)
        return [self._end(run, now_ms)]

    def _decide(self, run: _Run, step: BranchStep, now_ms: int) -> bool:
        condition = step.params.condition
        if condition is None:  # the model refuses this; a run treats it as false
            return False
        evaluation = evaluate(
            condition,
            state_from_enrollment(run.enrollment),
            now=_datetime(now_ms),
            audiences=self._audiences(),
        )
        return evaluation.matched

    def _issue(self, run: _Run, path: str, step: StepBase, now_ms: int) -> Effect:
        command = self._command(run, path, step, now_ms)
        if not isinstance(step, DelayStep):
            return Effect(self._action_topic(command), run.key, self._encode(command))
        due_ms = now_ms + int(step.params.duration().total_seconds() * 1000)
        return Effect(
            self._topics.name("step-results"),
            run.key,
            self._codec.encode(
                "step_result", _delay_over(command, self._encode(command), due_ms)
            ),
            due_ms=due_ms,
        )

    def _command(self, run: _Run, path: str, step: StepBase, now_ms: int) -> Record:
        action = step.action_type
        return {
            "run_id": run.run_id,
            "step_id": path,
            "idempotency_key": idempotency_key(run.run_id, path),
            "attempt": 1,
            "max_attempts": step.max_attempts,
            "action_type": DELAY_ACTION if action is None else str(action),
            "workflow_id": run.workflow.id,
            "workflow_version": _version(run),
            "mode": run.mode,
            "params": step.model_dump_json(by_alias=True),
            "enrollment": run.enrollment,
            "outputs": run.outputs,
            "errors": [],
            "run_started_at": run.started_at_ms,
            "issued_at": now_ms,
        }

    # failures

    def _failed_attempt(
        self, run: _Run, step: StepBase, result: Record, command: Record, now_ms: int
    ) -> list[Effect]:
        attempt = int(command["attempt"])
        error = str(result.get("error") or "the step failed without a message")
        retryable = bool(result.get("retryable"))
        errors = [
            *command.get("errors", []),
            {
                "attempt": attempt,
                "error": error,
                "retryable": retryable,
                "at": _epoch_ms(result.get("finished_at")) or now_ms,
            },
        ]
        updated = {**command, "errors": errors}
        if retryable and attempt < int(command["max_attempts"]):
            return [self._retry(updated, result, now_ms)]

        step_id = str(command["step_id"])
        run.outputs[f"{step_id}.{STATUS}"] = "ERROR"
        run.outputs[f"{step_id}.{ERROR}"] = error
        given_up = Effect(
            self._action_topic(command),
            run.key,
            self._encode(updated),
            dead_letter=_give_up_reason(step_id, attempt, error, retryable),
            history=tuple(str(item["error"]) for item in errors[:-1]),
        )
        if step.on_error == "continue":
            return [given_up, *self._walk(run, run.workflow.next_path(step_id), now_ms)]
        return [given_up, self._end(run, now_ms, failed_step=step_id, error=error)]

    def _retry(self, command: Record, result: Record, now_ms: int) -> Effect:
        attempt = int(command["attempt"])
        retry_after = result.get("retry_after_ms")
        backoff_ms = self._policy.backoff_ms(
            attempt,
            retry_after_ms=None if retry_after is None else int(retry_after),
            rng=self._rng,
        )
        again = {**command, "attempt": attempt + 1, "issued_at": now_ms}
        return Effect(
            self._action_topic(again),
            str(command["run_id"]).encode(),
            self._encode(again),
            due_ms=now_ms + backoff_ms,
        )

    # the end

    def _end(
        self,
        run: _Run,
        now_ms: int,
        *,
        failed_step: str | None = None,
        error: str | None = None,
    ) -> Effect:
        statuses = {
            name[: -len(STATUS) - 1]: value
            for name, value in run.outputs.items()
            if name.endswith(f".{STATUS}")
        }
        failed = [step for step, status in statuses.items() if status == "ERROR"]
        if failed_step is None and failed:
            # The run went on past steps marked `continue`; report the last one.
            failed_step = failed[-1]
            error = run.outputs.get(f"{failed_step}.{ERROR}")
        enrollment = run.enrollment
        record = {
            "run_id": run.run_id,
            "workflow_id": run.workflow.id,
            "workflow_version": _version(run),
            "mode": run.mode,
            "status": "ERROR" if failed_step is not None else "OK",
            "failed_step": failed_step,
            "error": error,
            "person_key": enrollment["person_key"],
            "account_key": enrollment["account_key"],
            "started_at": run.started_at_ms,
            "ended_at": now_ms,
            "steps_ok": sum(1 for status in statuses.values() if status == "OK"),
            "steps_failed": len(failed),
        }
        return Effect(
            self._topics.name("runs"), run.key, self._codec.encode("run", record)
        )

    # helpers

    def _action_topic(self, command: Record) -> str:
        return self._topics.action(str(command["action_type"]))

    def _encode(self, command: Record) -> bytes:
        return self._codec.encode("step_command", command)


def _version(run: _Run) -> int:
    return int(run.enrollment["workflow_version"])


def _delay_over(command: Record, encoded: bytes, due_ms: int) -> Record:
    """The result a delay step reports when its wait is over; `encoded` is the
    delay step's command, as every result carries its command."""
    return {
        "run_id": command["run_id"],
        "step_id": command["step_id"],
        "idempotency_key": command["idempotency_key"],
        "attempt": command["attempt"],
        "status": "OK",
        "retryable": False,
        "retry_after_ms": None,
        "error": None,
        "outputs": {},
        "finished_at": due_ms,
        "command": encoded,
    }


def _check_answers(result: Record, command: Record) -> None:
    for name in ("run_id", "step_id", "attempt"):
        if result.get(name) != command.get(name):
            raise RunError(
                f"expected a result for {name}={command.get(name)!r} as its command "
                f"says, got {result.get(name)!r}"
            )


def _step_at(workflow: Workflow, step_id: str) -> StepBase:
    try:
        return workflow.step_at(step_id)
    except LookupError as error:
        raise RunError(
            f"workflow {workflow.id!r} version {workflow.version!r} has no step "
            f"{step_id!r}"
        ) from error


def _give_up_reason(step_id: str, attempt: int, error: str, retryable: bool) -> str:
    if retryable:
        return f"step {step_id} failed {attempt} attempts; last error: {error}"
    return f"step {step_id} failed permanently on attempt {attempt}: {error}"


def _epoch_ms(value: Any) -> int | None:
    """Epoch milliseconds of a timestamp field: fastavro gives aware datetimes."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return int(value)


def _datetime(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC)
