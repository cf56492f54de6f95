"""The OpenAI-compatible connector against the emulator over real HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from services.actions.connectors.openai import OpenAIConnector, OpenAISettings
from services.actions.errors import PermanentError, RetryableError
from signalflow.emulators.base import Fault
from signalflow.emulators.openai import OpenAIEmulator
from signalflow.emulators.server import EmulatorServer

KEY = "sk-test-key-123456"
FACTS = {
    "person": {"first_name": "Ada", "title": "VP Engineering"},
    "account": {"name": "Acme Robotics"},
    "signals": [{"type": "funding", "scope": "account"}],
}


@pytest.fixture
async def model_server() -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(OpenAIEmulator(token=KEY)) as server:
        yield server


@pytest.fixture
async def openai(model_server: EmulatorServer) -> AsyncIterator[OpenAIConnector]:
    settings = OpenAISettings(
        base_url=model_server.base_url, api_key=SecretStr(KEY), timeout_s=0.5
    )
    async with OpenAIConnector(settings) as connector:
        yield connector


def messages(facts: object) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "Answer with a JSON object."},
        {"role": "user", "content": json.dumps(facts)},
    ]


async def test_the_answer_is_composed_from_the_prompt(openai: OpenAIConnector) -> None:
    answer = json.loads(await openai.complete(messages(FACTS)))

    assert answer["subject"] == "Funding at Acme Robotics"
    assert answer["body"].startswith("Hi Ada,")
    assert "VP Engineering at Acme Robotics" in answer["body"]


async def test_the_same_prompt_gets_the_same_answer(openai: OpenAIConnector) -> None:
    first = await openai.complete(messages(FACTS))
    second = await openai.complete(messages(FACTS))
    other = await openai.complete(messages({**FACTS, "account": {"name": "Globex"}}))

    assert first == second != other


async def test_a_plain_prompt_gets_a_subject_line(
    openai: OpenAIConnector, model_server: EmulatorServer
) -> None:
    prompt = [{"role": "user", "content": "Name: Grace Hopper\nSignal: new job"}]

    completion = await openai.chat(prompt, model="gpt-4o")

    assert completion.content.startswith("Subject: New job at your team\n\nHi Grace,")
    assert completion.model == "gpt-4o" and completion.finish_reason == "stop"
    [request] = model_server.emulator.received("POST", "/v1/chat/completions")
    assert request.json()["model"] == "gpt-4o"


async def test_json_object_is_requested_when_asked(
    openai: OpenAIConnector, model_server: EmulatorServer
) -> None:
    prompt = [{"role": "user", "content": "Company: Globex"}]

    answer = await openai.complete(prompt, json_object=True)

    assert json.loads(answer)["subject"].endswith("at Globex")
    [request] = model_server.emulator.requests
    assert request.json()["response_format"] == {"type": "json_object"}


async def test_an_unknown_model_is_permanent(openai: OpenAIConnector) -> None:
    with pytest.raises(PermanentError, match="model_not_found") as caught:
        await openai.complete(messages(FACTS), model="gpt-0")

    assert caught.value.status == 404


async def test_rate_limit_is_retryable_with_retry_after(
    openai: OpenAIConnector, model_server: EmulatorServer
) -> None:
    model_server.emulator.inject(Fault(kind="rate_limit", retry_after_s=20))

    with pytest.raises(RetryableError) as caught:
        await openai.complete(messages(FACTS))

    assert caught.value.retry_after_s == 20


async def test_server_error_is_retryable(
    openai: OpenAIConnector, model_server: EmulatorServer
) -> None:
    model_server.emulator.inject(Fault(kind="server_error"))

    with pytest.raises(RetryableError):
        await openai.complete(messages(FACTS))


async def test_bad_request_is_permanent(
    openai: OpenAIConnector, model_server: EmulatorServer
) -> None:
    model_server.emulator.inject(Fault(kind="bad_request"))

    with pytest.raises(PermanentError):
        await openai.complete(messages(FACTS))


async def test_hang_past_the_timeout_is_retryable(
    openai: OpenAIConnector, model_server: EmulatorServer
) -> None:
    model_server.emulator.inject(Fault(kind="hang", hang_s=5))

    with pytest.raises(RetryableError, match="did not answer"):
        await openai.complete(messages(FACTS))


async def test_a_wrong_key_is_permanent(model_server: EmulatorServer) -> None:
    settings = OpenAISettings(base_url=model_server.base_url, api_key=SecretStr("sk-x"))
    async with OpenAIConnector(settings) as connector:
        with pytest.raises(PermanentError, match="invalid_api_key"):
            await connector.complete(messages(FACTS))
