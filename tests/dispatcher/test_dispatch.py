"""Runs through the dispatcher on the real broker, with a stand-in action service."""

from __future__ import annotations

import asyncio

from dispatcher_harness import (
    OK,
    Answer,
    FakeActions,
    TopicWatcher,
    enrollment,
    produce_enrollments,
    workflow,
)

from services.dispatcher.retry import idempotency_key
from services.dispatcher.service import Dispatcher
from signalflow.contracts import Codec
from signalflow.definitions import DefinitionLog
from signalflow.kafka.clients import make_producer
from signalflow.settings import Settings
from signalflow.topics import ActionType, Topics

ACTIONS = [ActionType.CRM_UPSERT, ActionType.AI_MESSAGE, ActionType.TASK]
THREE_STEPS = [
    {"kind": "crm_upsert"},
    {"kind": "delay", "params": {"seconds": 5}},
    {"kind": "ai_message"},
]


async def wait_for(watcher: TopicWatcher, count: int, timeout_s: float) -> list[dict]:
    return await asyncio.to_thread(watcher.wait_for, count, timeout_s=timeout_s)


async def test_a_thousand_runs_take_every_step_once_in_order_after_the_delay(
    settings: Settings, definitions: DefinitionLog, dispatcher: Dispatcher, codec: Codec
) -> None:
    version = await definitions.save(workflow("three", THREE_STEPS))
    runs = [f"run-{n}" for n in range(1_000)]

    with (
        FakeActions(settings, ACTIONS) as actions,
        TopicWatcher(settings, "runs", "run") as ended,
    ):
        produce_enrollments(
            settings, codec, (enrollment(run, "three", version) for run in runs)
        )
        records = await wait_for(ended, len(runs), timeout_s=90)

    assert sorted(r["run_id"] for r in records) == sorted(runs)
    assert {r["status"] for r in records} == {"OK"}
    by_run = actions.by_run()
    for run in runs:
        steps = by_run[run]
        assert [s.step_id for s in steps] == ["0", "2"], run
        assert [s.attempt for s in steps] == [1, 1]
        assert steps[1].idempotency_key == idempotency_key(run, "2")
        # The delay is counted from the result of step 0: never shorter than 5 s.
        assert steps[1].received_ms - steps[0].answered_ms >= 5_000, run
    assert not actions.duplicates()


async def test_a_step_failing_three_times_succeeds_on_attempt_four(
    settings: Settings, definitions: DefinitionLog, dispatcher: Dispatcher, codec: Codec
) -> None:
    version = await definitions.save(workflow("flaky", [{"kind": "crm_upsert"}]))

    def script(run: str, step: str, attempt: int) -> Answer:
        if attempt <= 3:
            return Answer("ERROR", error=f"503 on {attempt}", retryable=True)
        return OK

    with (
        FakeActions(settings, ACTIONS, script=script) as actions,
        TopicWatcher(settings, "runs", "run") as ended,
    ):
        produce_enrollments(settings, codec, [enrollment("r-flaky", "flaky", version)])
        [run] = await wait_for(ended, 1, timeout_s=30)

    attempts = actions.by_run()["r-flaky"]
    assert [a.attempt for a in attempts] == [1, 2, 3, 4]
    assert len({a.idempotency_key for a in attempts}) == 1
    assert [e["error"] for e in attempts[-1].errors] == [
        "503 on 1",
        "503 on 2",
        "503 on 3",
    ]
    assert (run["status"], run["steps_ok"], run["steps_failed"]) == ("OK", 1, 0)


async def test_retries_wait_at_least_the_targets_retry_after(
    settings: Settings, definitions: DefinitionLog, dispatcher: Dispatcher, codec: Codec
) -> None:
    version = await definitions.save(workflow("slow-down", [{"kind": "crm_upsert"}]))

    def script(run: str, step: str, attempt: int) -> Answer:
        if attempt == 1:
            return Answer("ERROR", error="429", retryable=True, retry_after_ms=3_000)
        return OK

    with (
        FakeActions(settings, ACTIONS, script=script) as actions,
        TopicWatcher(settings, "runs", "run") as ended,
    ):
        produce_enrollments(
            settings, codec, [enrollment("r-429", "slow-down", version)]
        )
        await wait_for(ended, 1, timeout_s=30)

    first, second = actions.by_run()["r-429"]
    assert second.received_ms - first.answered_ms >= 3_000


async def test_a_permanent_failure_stops_the_run_and_is_dead_lettered_once(
    settings: Settings, definitions: DefinitionLog, dispatcher: Dispatcher, codec: Codec
) -> None:
    steps = [{"kind": "crm_upsert"}, {"kind": "ai_message"}]
    version = await definitions.save(workflow("stops", steps))

    def script(run: str, step: str, attempt: int) -> Answer:
        return Answer("ERROR", error="400 invalid email", retryable=False)

    with (
        FakeActions(settings, ACTIONS, script=script) as actions,
        TopicWatcher(settings, "runs", "run") as ended,
        TopicWatcher(settings, "dead-letters", "dead_letter") as dead,
    ):
        produce_enrollments(settings, codec, [enrollment("r-stop", "stops", version)])
        [run] = await wait_for(ended, 1, timeout_s=30)
        await asyncio.sleep(1.0)  # anything produced twice would be here by now
        letters = dead.snapshot()

    assert [a.step_id for a in actions.by_run()["r-stop"]] == ["0"]
    assert (run["status"], run["failed_step"], run["error"]) == (
        "ERROR",
        "0",
        "400 invalid email",
    )
    [letter] = letters
    command = codec.decode("step_command", letter["value"])
    assert letter["source_topic"] == Topics(settings).action(ActionType.CRM_UPSERT)
    assert (command["run_id"], command["step_id"]) == ("r-stop", "0")
    assert [e["error"] for e in command["errors"]] == ["400 invalid email"]


async def test_a_failed_step_marked_continue_lets_the_run_go_on(
    settings: Settings, definitions: DefinitionLog, dispatcher: Dispatcher, codec: Codec
) -> None:
    steps = [{"kind": "crm_upsert", "on_error": "continue"}, {"kind": "ai_message"}]
    version = await definitions.save(workflow("goes-on", steps))

    def script(run: str, step: str, attempt: int) -> Answer:
        if step == "0":
            return Answer("ERROR", error="400 invalid email", retryable=False)
        return Answer(outputs={"subject": "Hi", "body": "Hello"})

    with (
        FakeActions(settings, ACTIONS, script=script) as actions,
        TopicWatcher(settings, "runs", "run") as ended,
        TopicWatcher(settings, "dead-letters", "dead_letter") as dead,
    ):
        produce_enrollments(settings, codec, [enrollment("r-on", "goes-on", version)])
        [run] = await wait_for(ended, 1, timeout_s=30)
        letters = dead.snapshot()

    assert [a.step_id for a in actions.by_run()["r-on"]] == ["0", "1"]
    assert (run["steps_ok"], run["steps_failed"], run["failed_step"]) == (1, 1, "0")
    assert len(letters) == 1


async def test_a_run_finishes_on_the_version_it_started_on(
    settings: Settings, definitions: DefinitionLog, dispatcher: Dispatcher, codec: Codec
) -> None:
    first = [
        {"kind": "crm_upsert"},
        {"kind": "delay", "params": {"seconds": 3}},
        {"kind": "ai_message"},
    ]
    second = [{"kind": "task", "params": {"subject": "Call them"}}]
    v1 = await definitions.save(workflow("versioned", first))

    with (
        FakeActions(settings, ACTIONS) as actions,
        TopicWatcher(settings, "runs", "run") as ended,
    ):
        produce_enrollments(settings, codec, [enrollment("r-v1", "versioned", v1)])
        while not actions.by_run().get("r-v1"):
            await asyncio.sleep(0.1)
        v2 = await definitions.save(workflow("versioned", second))
        [run] = await wait_for(ended, 1, timeout_s=30)

    steps = actions.by_run()["r-v1"]
    assert (v1, v2) == (1, 2)
    assert [(s.step_id, s.workflow_version) for s in steps] == [("0", 1), ("2", 1)]
    assert (run["workflow_version"], run["status"]) == (1, "OK")


async def test_test_and_dry_runs_carry_their_mode_to_commands_and_run_events(
    settings: Settings, definitions: DefinitionLog, dispatcher: Dispatcher, codec: Codec
) -> None:
    version = await definitions.save(workflow("modes", [{"kind": "crm_upsert"}]))
    records = [
        enrollment(f"r-{mode}", "modes", version, mode=mode)
        for mode in ("LIVE", "TEST", "DRY_RUN")
    ]

    with (
        FakeActions(settings, ACTIONS) as actions,
        TopicWatcher(settings, "runs", "run") as ended,
    ):
        produce_enrollments(settings, codec, records)
        runs = await wait_for(ended, 3, timeout_s=30)

    assert {r["run_id"]: r["mode"] for r in runs} == {
        "r-LIVE": "LIVE",
        "r-TEST": "TEST",
        "r-DRY_RUN": "DRY_RUN",
    }
    assert {run: steps[0].mode for run, steps in actions.by_run().items()} == {
        "r-LIVE": "LIVE",
        "r-TEST": "TEST",
        "r-DRY_RUN": "DRY_RUN",
    }


async def test_bad_input_goes_to_dead_letters_and_the_stream_moves_on(
    settings: Settings, definitions: DefinitionLog, dispatcher: Dispatcher, codec: Codec
) -> None:
    version = await definitions.save(workflow("fine", [{"kind": "crm_upsert"}]))
    topics = Topics(settings)
    producer = make_producer(settings)
    producer.produce(topics.name("enrollments"), b"not avro", key=b"acct-x")
    producer.produce(topics.name("step-results"), b"\xc3\x01garbage", key=b"run-y")
    producer.flush(10)

    with (
        FakeActions(settings, ACTIONS),
        TopicWatcher(settings, "runs", "run") as ended,
        TopicWatcher(settings, "dead-letters", "dead_letter") as dead,
    ):
        produce_enrollments(
            settings,
            codec,
            [
                enrollment("r-ghost", "nowhere", 1),
                enrollment("r-fine", "fine", version),
            ],
        )
        [run] = await wait_for(ended, 1, timeout_s=30)
        letters = await wait_for(dead, 3, timeout_s=10)

    assert run["run_id"] == "r-fine"
    reasons = sorted(letter["error"] for letter in letters)
    assert len(letters) == 3
    assert any("workflow 'nowhere'" in reason for reason in reasons)
    assert {letter["service"] for letter in letters} == {"dispatcher"}
    assert b"not avro" in [letter["value"] for letter in letters]
