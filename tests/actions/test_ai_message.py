"""AI messaging: the built-in writer (no network) and an OpenAI-compatible server
(the emulator), through the real consumer."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from services.actions.composer import compose
from services.actions.errors import PermanentError
from services.actions.kinds.ai_message import parse_answer
from services.actions.resources import Resources
from signalflow.emulators.base import Fault
from signalflow.emulators.openai import OpenAIEmulator
from signalflow.topics import ActionType
from signalflow.workflow.variables import RunContext

from .conftest import enrollment, step_command


def model_server(running: Any) -> OpenAIEmulator:
    emulator = running.server("openai").emulator
    assert isinstance(emulator, OpenAIEmulator)
    return emulator


async def test_builtin_writer_composes_from_the_signals_without_network(
    harness_factory, resources: Resources
) -> None:
    harness = await harness_factory(ActionType.AI_MESSAGE, resources)

    result = await harness.run(
        step_command(ActionType.AI_MESSAGE, {"tone": "friendly", "max_words": 60})
    )

    assert result["status"] == "OK", result
    assert result["outputs"]["subject"] == "Congrats on the Series B, Acme"
    body = result["outputs"]["body"]
    assert body.startswith("Hi Dana!")
    assert "Congratulations to Acme on the Series B round." in body
    assert "Cheers," in body


def test_builtin_writer_uses_a_second_signal_and_caps_the_words() -> None:
    context = RunContext.from_enrollment(
        enrollment(
            signals=[
                {
                    "signal_id": "s1",
                    "type": "job_change",
                    "scope": "PERSON",
                    "occurred_at": datetime(2024, 5, 3, tzinfo=UTC),
                    "attributes": {},
                },
                {
                    "signal_id": "s2",
                    "type": "hiring_surge",
                    "scope": "COMPANY",
                    "occurred_at": datetime(2024, 5, 1, tzinfo=UTC),
                    "attributes": {"department": "Engineering"},
                },
            ]
        )
    )

    message = compose(context, tone="direct", max_words=20)

    assert message.subject == "Congrats on the new role, Dana"
    assert message.body.startswith("Dana,\n\nCongratulations on starting at Acme")
    paragraph = message.body.split("\n\n")[1]
    assert len(paragraph.split()) == 20 and paragraph.endswith("...")


async def test_openai_compatible_provider_writes_subject_and_body(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    running = await emulators("openai")
    harness = await harness_factory(ActionType.AI_MESSAGE, vendor_resources)

    result = await harness.run(
        step_command(
            ActionType.AI_MESSAGE,
            {
                "provider": "openai_compatible",
                "model": "gpt-4o",
                "instructions": "Mention $Company Name's growth.",
            },
        )
    )

    assert result["status"] == "OK", result
    assert result["outputs"]["subject"] and result["outputs"]["body"]
    (request,) = model_server(running).received("POST", "*chat/completions")
    sent = request.json()
    assert sent["model"] == "gpt-4o"
    system, user = sent["messages"]
    assert "Mention Acme's growth." in system["content"]
    facts = json.loads(user["content"])
    assert facts["person"]["first_name"] == "Dana"
    assert facts["signals"][0]["attributes"]["round"] == "Series B"


async def test_model_server_errors_are_classified(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    running = await emulators("openai")
    harness = await harness_factory(ActionType.AI_MESSAGE, vendor_resources)
    params = {"provider": "openai_compatible"}
    model_server(running).inject(Fault(kind="server_error"))

    unavailable = await harness.run(step_command(ActionType.AI_MESSAGE, params))
    model_server(running).inject(Fault(kind="bad_request"))
    refused = await harness.run(step_command(ActionType.AI_MESSAGE, params))

    assert (unavailable["status"], unavailable["retryable"]) == ("ERROR", True)
    assert (refused["status"], refused["retryable"]) == ("ERROR", False)


async def test_dry_run_shows_the_model_request_and_still_fills_outputs(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    running = await emulators("openai")
    harness = await harness_factory(ActionType.AI_MESSAGE, vendor_resources)

    result = await harness.run(
        step_command(
            ActionType.AI_MESSAGE, {"provider": "openai_compatible"}, mode="DRY_RUN"
        )
    )

    request = json.loads(result["outputs"]["would_send.openai.request"])
    assert request["messages"][0]["role"] == "system"
    assert result["outputs"]["subject"] == "Congrats on the Series B, Acme"
    assert not model_server(running).received()


def test_answers_are_read_as_json_or_subject_lines() -> None:
    fenced = '```json\n{"subject": "Hi", "body": "Text"}\n```'

    assert parse_answer(fenced).subject == "Hi"
    assert parse_answer("Subject: Hello\n\nBody here").body == "Body here"
    with pytest.raises(PermanentError):
        parse_answer("no structure at all")
