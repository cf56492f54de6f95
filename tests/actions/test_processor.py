"""What the action service does with commands it cannot perform."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer

from services.actions.resources import Resources
from signalflow.kafka.clients import make_producer
from signalflow.local import free_port_block
from signalflow.settings import Settings
from signalflow.topics import ActionType, Topics

from .conftest import CODEC, ResultReader, step_command

SIGNALFLOW = str(Path(sys.executable).parent / "signalflow")


def dead_letters(
    settings: Settings, topics: Topics, count: int
) -> list[dict[str, Any]]:
    consumer = Consumer(
        {
            **settings.kafka.librdkafka_config(),
            "group.id": f"dlq-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topics.name("dead-letters")])
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + 20
    try:
        while len(found) < count and time.monotonic() < deadline:
            for message in consumer.consume(10, 0.5):
                if message.error() is None:
                    found.append(CODEC.decode("dead_letter", message.value()))
    finally:
        consumer.close()
    return found


async def test_undecodable_and_misrouted_commands_go_to_dead_letters(
    harness_factory, resources: Resources, settings: Settings, topics: Topics
) -> None:
    harness = await harness_factory(ActionType.WEBHOOK, resources)
    misrouted = step_command(ActionType.SLACK, {"recipients": [], "message": "x"})
    harness.send({"run_id": "broken"}, raw=b"not avro at all")
    harness.send(misrouted)
    valid = step_command(
        ActionType.WEBHOOK, {"url": "http://10.0.0.1/x", "method": "GET"}
    )

    # The stream moves on: a valid command behind them is answered.
    answered = await harness.run(valid)
    letters = await asyncio.to_thread(dead_letters, settings, topics, 2)

    assert answered["status"] == "ERROR"
    assert sorted(letter["value"] for letter in letters) == sorted(
        [b"not avro at all", CODEC.encode("step_command", misrouted)]
    )
    reasons = " | ".join(letter["error"] for letter in letters)
    assert "undecodable step command" in reasons
    assert "expected a 'webhook' command" in reasons
    assert {letter["service"] for letter in letters} == {"action-webhook"}


async def test_parameters_that_do_not_fit_fail_the_step_permanently(
    harness_factory, resources: Resources
) -> None:
    harness = await harness_factory(ActionType.WEBHOOK, resources)
    command = step_command(ActionType.WEBHOOK, {"method": "POST"})
    broken_json = {**step_command(ActionType.WEBHOOK, {}), "params": "{not json"}

    missing_url = await harness.run(command)
    not_json = await harness.run(broken_json)

    assert (missing_url["status"], missing_url["retryable"]) == ("ERROR", False)
    assert "url" in missing_url["error"]
    assert not_json["status"] == "ERROR" and "as JSON" in not_json["error"]


async def test_a_whole_step_document_is_accepted_as_parameters(
    harness_factory, resources: Resources
) -> None:
    harness = await harness_factory(ActionType.AI_MESSAGE, resources)
    step = {"kind": "ai_message", "name": "Write", "params": {"tone": "casual"}}

    result = await harness.run(step_command(ActionType.AI_MESSAGE, step))

    assert result["status"] == "OK"
    assert result["outputs"]["body"].startswith("Hey Dana,")
    echoed = CODEC.decode("step_command", result["command"])
    assert json.loads(echoed["params"]) == step


async def test_the_cli_runs_an_action_service_until_sigterm(
    settings: Settings, topics: Topics, hook_server, tmp_path: Any
) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "REDIS_URL": settings.redis.url,
        "SIGNALFLOW_TOPIC_PREFIX": settings.topic_prefix,
        "SIGNALFLOW_WEBHOOK_ALLOWLIST": "127.0.0.1",
        "SIGNALFLOW_ACTIONS_BASE_PORT": str(free_port_block(len(ActionType))),
    }
    log_file = (tmp_path / "action.log").open("w")
    process = subprocess.Popen(
        [SIGNALFLOW, "run", "action", "--type", "webhook"],
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    reader = ResultReader(settings, topics)
    try:
        command = step_command(
            ActionType.WEBHOOK, {"url": hook_server.url + "/cli", "method": "POST"}
        )
        producer = make_producer(settings, linger_ms=0)
        producer.produce(
            topics.action(ActionType.WEBHOOK),
            CODEC.encode("step_command", command),
            key=command["run_id"],
        )
        producer.flush(10)
        (result,) = await reader.wait_for(1, timeout_s=60)
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 30)
        reader.close()
        log_file.close()

    assert result["status"] == "OK" and result["outputs"]["status"] == "200"
    assert hook_server.requests[0]["path"] == "/cli"
    assert code == 0, (tmp_path / "action.log").read_text()[-2000:]
