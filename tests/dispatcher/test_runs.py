"""How `RunStepper` moves a run from one record, with no state between records."""

from __future__ import annotations

import random
from typing import Any

import pytest
from dispatcher_harness import enrollment, workflow

from services.dispatcher.retry import RetryPolicy, idempotency_key
from services.dispatcher.runs import Effect, RunError, RunStepper
from signalflow.contracts import Codec
from signalflow.settings import Settings
from signalflow.topics import Topics

CODEC = Codec.load()
TOPICS = Topics(Settings(topic_prefix="u."))
POLICY = RetryPolicy(base_ms=1_000, cap_ms=60_000)
NOW = 1_767_614_400_000

STEPS: list[dict[str, Any]] = [
    {"kind": "crm_upsert"},
    {"kind": "delay", "params": {"seconds": 5}},
    {
        "kind": "branch",
        "params": {
            "condition": {"kind": "has_email"},
            "then": [{"kind": "ai_message", "max_attempts": 4}],
            "else": [{"kind": "crm_upsert", "on_error": "continue"}],
        },
    },
    {"kind": "crm_upsert", "name": "last", "max_attempts": 1},
]
FLOW = workflow("wf", STEPS, version=1)


def stepper(seed: int = 1) -> RunStepper:
    return RunStepper(CODEC, TOPICS, POLICY, rng=random.Random(seed))


def command_of(effect: Effect) -> dict[str, Any]:
    return CODEC.decode("step_command", effect.value)


def result(
    command: dict[str, Any], status: str = "OK", **fields: Any
) -> dict[str, Any]:
    return {
        "run_id": command["run_id"],
        "step_id": command["step_id"],
        "idempotency_key": command["idempotency_key"],
        "attempt": command["attempt"],
        "status": status,
        "retryable": False,
        "retry_after_ms": None,
        "error": None,
        "outputs": {},
        "finished_at": NOW,
        "command": CODEC.encode("step_command", command),
        **fields,
    }


def answer(command: dict[str, Any], **fields: Any) -> list[Effect]:
    return stepper().advance(result(command, **fields), command, FLOW, now_ms=NOW)


def test_an_enrollment_becomes_the_first_steps_command() -> None:
    [effect] = stepper().start(enrollment("r1", "wf", 1), FLOW, now_ms=NOW)

    command = command_of(effect)
    assert (effect.topic, effect.key, effect.due_ms) == (
        "u.actions.crm-upsert",
        b"r1",
        None,
    )
    assert command["step_id"] == "0"
    assert command["attempt"] == 1
    assert command["max_attempts"] == 5
    assert command["idempotency_key"] == idempotency_key("r1", "0")
    assert (command["workflow_id"], command["workflow_version"]) == ("wf", 1)
    assert command["enrollment"]["person_key"] == "person-r1"
    assert '"kind":"crm_upsert"' in command["params"]


def test_a_delay_step_waits_in_the_tiers_as_its_own_result() -> None:
    [first] = stepper().start(enrollment("r1", "wf", 1), FLOW, now_ms=NOW)

    [effect] = answer(command_of(first), outputs={"record_id": "003X"})

    delayed = CODEC.decode("step_result", effect.value)
    delay_command = CODEC.decode("step_command", delayed["command"])
    assert (effect.topic, effect.due_ms) == ("u.step-results", NOW + 5_000)
    assert (delayed["step_id"], delayed["status"]) == ("1", "OK")
    assert delay_command["action_type"] == "delay"
    assert delay_command["outputs"] == {"0.record_id": "003X", "0._status": "OK"}


def test_a_branch_is_decided_on_the_enrollment_and_its_arm_runs_next() -> None:
    delay = {
        **command_of(stepper().start(enrollment("r1", "wf", 1), FLOW, now_ms=NOW)[0])
    }
    delay.update(step_id="1", action_type="delay", idempotency_key="x")

    [with_email] = answer(delay)
    without = {**delay, "enrollment": enrollment("r2", "wf", 1, email=None)}
    [without_email] = answer(without)

    assert with_email.topic == "u.actions.ai-message"
    assert command_of(with_email)["step_id"] == "2.then.0"
    assert command_of(with_email)["outputs"]["2._branch"] == "then"
    assert without_email.topic == "u.actions.crm-upsert"
    assert command_of(without_email)["step_id"] == "2.else.0"


def test_a_retryable_error_sends_the_same_command_again_later() -> None:
    command = command_of(
        stepper().start(enrollment("r1", "wf", 1), FLOW, now_ms=NOW)[0]
    )

    [effect] = answer(command, status="ERROR", error="503", retryable=True)

    again = command_of(effect)
    assert effect.topic == "u.actions.crm-upsert"
    assert NOW <= effect.due_ms <= NOW + POLICY.ceiling_ms(1)
    assert again["attempt"] == 2
    assert again["idempotency_key"] == command["idempotency_key"]
    assert [(e["attempt"], e["error"]) for e in again["errors"]] == [(1, "503")]


def test_a_retry_waits_at_least_what_the_target_asked_for() -> None:
    command = command_of(
        stepper().start(enrollment("r1", "wf", 1), FLOW, now_ms=NOW)[0]
    )

    [effect] = answer(
        command, status="ERROR", error="429", retryable=True, retry_after_ms=120_000
    )

    assert effect.due_ms == NOW + 120_000


def test_the_last_attempt_fails_the_step_and_ends_the_run() -> None:
    command = command_of(
        stepper().start(enrollment("r1", "wf", 1), FLOW, now_ms=NOW)[0]
    )
    command.update(
        attempt=5,
        errors=[
            {"attempt": n, "error": "503", "retryable": True, "at": NOW}
            for n in range(1, 5)
        ],
    )

    dead, end = answer(command, status="ERROR", error="still 503", retryable=True)

    letter = command_of(dead)
    run = CODEC.decode("run", end.value)
    assert dead.dead_letter is not None and "failed 5 attempts" in dead.dead_letter
    assert dead.history == ("503",) * 4
    assert [e["attempt"] for e in letter["errors"]] == [1, 2, 3, 4, 5]
    assert (run["status"], run["failed_step"], run["error"]) == (
        "ERROR",
        "0",
        "still 503",
    )
    assert (run["steps_ok"], run["steps_failed"]) == (0, 1)


def test_a_permanent_error_fails_at_once() -> None:
    command = command_of(
        stepper().start(enrollment("r1", "wf", 1), FLOW, now_ms=NOW)[0]
    )

    dead, end = answer(command, status="ERROR", error="400 bad email", retryable=False)

    assert "failed permanently on attempt 1" in (dead.dead_letter or "")
    assert CODEC.decode("run", end.value)["status"] == "ERROR"


def test_a_step_marked_continue_lets_the_run_go_on_after_failing() -> None:
    start = command_of(stepper().start(enrollment("r2", "wf", 1), FLOW, now_ms=NOW)[0])
    command = {**start, "step_id": "2.else.0", "idempotency_key": "k"}

    dead, following = answer(command, status="ERROR", error="400", retryable=False)

    assert dead.dead_letter is not None
    assert command_of(following)["step_id"] == "3"
    assert command_of(following)["outputs"]["2.else.0._status"] == "ERROR"


def test_the_run_ends_after_the_last_step_with_its_counts_and_mode() -> None:
    record = enrollment("r3", "wf", 1, mode="DRY_RUN")
    last = command_of(stepper().start(record, FLOW, now_ms=NOW)[0])
    last.update(
        step_id="3",
        outputs={
            "0._status": "OK",
            "1._status": "OK",
            "2._status": "OK",
            "2.else.0._status": "ERROR",
            "2.else.0._error": "400",
        },
    )

    [end] = answer(last)

    run = CODEC.decode("run", end.value)
    assert end.topic == "u.runs"
    assert run["mode"] == "DRY_RUN"
    assert (run["status"], run["failed_step"], run["error"]) == (
        "ERROR",
        "2.else.0",
        "400",
    )
    assert (run["steps_ok"], run["steps_failed"]) == (4, 1)
    assert run["ended_at"].timestamp() * 1000 == NOW


def test_every_command_carries_the_enrollments_mode() -> None:
    [effect] = stepper().start(enrollment("r4", "wf", 1, mode="TEST"), FLOW, now_ms=NOW)

    [delay] = answer(command_of(effect))

    assert command_of(effect)["mode"] == "TEST"
    delay_command = CODEC.decode(
        "step_command", CODEC.decode("step_result", delay.value)["command"]
    )
    assert delay_command["mode"] == "TEST"


def test_a_result_for_a_step_the_version_lacks_is_refused() -> None:
    command = command_of(
        stepper().start(enrollment("r1", "wf", 1), FLOW, now_ms=NOW)[0]
    )
    command["step_id"] = "9"

    with pytest.raises(RunError, match="has no step '9'"):
        answer(command)


def test_a_result_that_does_not_answer_its_command_is_refused() -> None:
    command = command_of(
        stepper().start(enrollment("r1", "wf", 1), FLOW, now_ms=NOW)[0]
    )

    with pytest.raises(RunError, match="attempt"):
        stepper().advance(result(command, attempt=3), command, FLOW, now_ms=NOW)
