"""Any OpenAI-compatible chat-completions server, through httpx.

`base_url` points at the API root (`https://api.openai.com/v1`, a local model
server, or the emulator), `api_key` is sent as a bearer token and `model` is
the default model a step may override.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.actions.connectors.http import HttpConnector
from services.actions.connectors.settings import ConnectorSettings
from services.actions.errors import PermanentError
from signalflow.emulators import demo

VENDOR = "openai"


class OpenAISettings(ConnectorSettings):
    """The model server, key and default model (`SIGNALFLOW_OPENAI_*`)."""

    model_config = SettingsConfigDict(env_prefix="SIGNALFLOW_OPENAI_", extra="ignore")

    base_url: str = Field(
        default=f"http://{demo.DEMO_HOST}:{demo.OPENAI.port}/v1",
        description="The API root, ending in /v1.",
    )
    api_key: SecretStr = Field(default=SecretStr(demo.OPENAI.token))
    model: str = "gpt-4o-mini"
    timeout_s: float = Field(default=60.0, gt=0)
    temperature: float = Field(default=0.4, ge=0, le=2)
    max_tokens: int = Field(default=800, ge=1)


@dataclass(frozen=True)
class ChatCompletion:
    """The first choice of a completion, with the model that wrote it."""

    content: str
    model: str
    finish_reason: str | None
    total_tokens: int | None


class OpenAIConnector(HttpConnector):
    """Asks a chat-completions server for an answer to a list of messages."""

    vendor: ClassVar[str] = VENDOR

    def __init__(
        self,
        settings: OpenAISettings | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings or OpenAISettings()
        super().__init__(self.settings, transport=transport)

    def base_url(self) -> str:
        return self.settings.base_url.rstrip("/") + "/"

    def auth_headers(self) -> dict[str, str]:
        key = self.settings.api_key.get_secret_value()
        return {"Authorization": f"Bearer {key}"}

    def secrets(self) -> list[str]:
        return [self.settings.api_key.get_secret_value()]

    @staticmethod
    def describe_error(document: Any) -> str | None:
        error = document.get("error") if isinstance(document, dict) else None
        if isinstance(error, dict) and error.get("message"):
            return f"{error.get('code') or error.get('type')}: {error['message']}"
        return None

    async def complete(
        self,
        messages: list[dict[str, str]],
        *,
        model: str | None = None,
        json_object: bool = False,
    ) -> str:
        """The assistant's answer to `messages` (dicts with `role` and `content`).

        `json_object` asks the server for a JSON object answer. Raises
        PermanentError for an answer without content (a refusal, or a cut-off
        `finish_reason`), and ActionError for every failure on the way.
        """
        completion = await self.chat(messages, model=model, json_object=json_object)
        return completion.content

    async def chat(
        self,
        messages: list[dict[str, str]],
        *,
        model: str | None = None,
        json_object: bool = False,
    ) -> ChatCompletion:
        """Like `complete`, with the model, finish reason and token count."""
        request: dict[str, Any] = {
            "model": model or self.settings.model,
            "messages": messages,
            "temperature": self.settings.temperature,
            "max_tokens": self.settings.max_tokens,
        }
        if json_object:
            request["response_format"] = {"type": "json_object"}
        answer = await self.http.request("POST", "chat/completions", json_body=request)
        return _first_choice(answer.json_object())


def _first_choice(document: dict[str, Any]) -> ChatCompletion:
    choices = document.get("choices")
    if not isinstance(choices, list) or not choices:
        raise PermanentError(
            f"expected choices in the completion, got {str(document)[:120]!r}",
            vendor=VENDOR,
        )
    choice = choices[0]
    message = choice.get("message") or {}
    content = message.get("content")
    finish_reason = choice.get("finish_reason")
    if not isinstance(content, str) or not content.strip():
        refusal = message.get("refusal")
        raise PermanentError(
            f"the model gave no answer (finish_reason={finish_reason!r}, "
            f"refusal={refusal!r})",
            vendor=VENDOR,
        )
    if finish_reason == "length":
        raise PermanentError(
            "the model's answer was cut off at max_tokens; raise "
            "SIGNALFLOW_OPENAI_MAX_TOKENS or ask for less",
            vendor=VENDOR,
        )
    usage = document.get("usage") or {}
    return ChatCompletion(
        content=content,
        model=str(document.get("model", "")),
        finish_reason=finish_reason,
        total_tokens=usage.get("total_tokens"),
    )
