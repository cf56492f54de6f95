"""An OpenAI-compatible model server that answers deterministically.

`POST /v1/chat/completions` answers in the real response shape (`id`, `object`,
`created`, `model`, `choices[].message`, `finish_reason`, `usage`) with an e-mail
composed from the last user message, so the same prompt always gets the same
answer and a different prompt a different one. The facts come from a JSON object
(`person`, `account`, `signals`) or from `key: value` lines. The answer is a
JSON object `{"subject", "body"}` when the request asks for
`response_format: {"type": "json_object"}` or its system message asks for JSON,
and `Subject: ...` followed by the body otherwise. `GET /v1/models` lists the
models served. Errors use OpenAI's `{"error": {"message", "type", "code"}}`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from signalflow.emulators.base import Emulator, json_body

MODELS = ("gpt-4o-mini", "gpt-4o", "signalflow-emulator")
OPENINGS = (
    "I saw the news about {event} and wanted to reach out.",
    "Congratulations on {event}; it caught my eye.",
    "Reading about {event} made me think of you.",
)
CLOSINGS = (
    "Would a short call next week be useful?",
    "Is this worth fifteen minutes of your time?",
    "Happy to share how similar teams approached it, if helpful.",
)


class OpenAIEmulator(Emulator):
    """Chat completions composed from the prompt; `completions` keeps each answer."""

    name: ClassVar[str] = "openai"
    api_root: ClassVar[str] = "/v1"

    def __init__(self, *, token: str | None = None) -> None:
        super().__init__(token=token)
        self.completions: list[dict[str, Any]] = []

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/chat/completions", self._chat_completions, methods=["POST"]),
            Route("/v1/models", self._models, methods=["GET"]),
        ]

    def error_response(self, status: int, message: str) -> Response:
        kinds = {429: "rate_limit_exceeded", 400: "invalid_request_error"}
        kind = kinds.get(status, "server_error")
        return openai_error(status, message, kind=kind, code=kind)

    def unauthorized_response(self) -> Response:
        return openai_error(
            401,
            "Incorrect API key provided.",
            kind="invalid_request_error",
            code="invalid_api_key",
        )

    async def _models(self, request: Request) -> Response:
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "signalflow"}
            for m in MODELS
        ]
        return JSONResponse({"object": "list", "data": data})

    async def _chat_completions(self, request: Request) -> Response:
        document = await json_body(request)
        problem = _request_problem(document)
        if problem is not None:
            return openai_error(400, problem, kind="invalid_request_error")
        if document["model"] not in MODELS:
            message = f"The model `{document['model']}` does not exist."
            return openai_error(
                404, message, kind="invalid_request_error", code="model_not_found"
            )
        completion = _completion(document)
        self.completions.append(completion)
        return JSONResponse(completion)


def openai_error(
    status: int, message: str, *, kind: str, code: str | None = None
) -> JSONResponse:
    """An error body in OpenAI's shape."""
    error = {"message": message, "type": kind, "param": None, "code": code}
    return JSONResponse({"error": error}, status_code=status)


def _request_problem(document: Any) -> str | None:
    if not isinstance(document, dict):
        return "We could not parse the JSON body of your request."
    if not isinstance(document.get("model"), str):
        return "you must provide a model parameter"
    messages = document.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array"
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            return f"messages[{index}] must have string 'role' and 'content'"
        if message.get("role") not in ("system", "user", "assistant", "developer"):
            return f"messages[{index}].role {message.get('role')!r} is not supported"
    return None


def _completion(document: dict[str, Any]) -> dict[str, Any]:
    messages = document["messages"]
    prompt = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    system = " ".join(m["content"] for m in messages if m["role"] == "system")
    subject, body = compose_email(prompt)
    wants_json = (document.get("response_format") or {}).get("type") == "json_object"
    if wants_json or "json" in system.lower():
        content = json.dumps({"subject": subject, "body": body})
    else:
        content = f"Subject: {subject}\n\n{body}"
    prompt_tokens = sum(len(m["content"].split()) for m in messages)
    completion_tokens = len(content.split())
    digest = hashlib.sha256(json.dumps(messages).encode()).hexdigest()
    return {
        "id": f"chatcmpl-{digest[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": document["model"],
        "system_fingerprint": "fp_signalflow",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def compose_email(prompt: str) -> tuple[str, str]:
    """A deterministic (subject, body) drawn from the facts in a prompt."""
    facts = _facts(prompt)
    first_name = facts.get("first_name") or "there"
    company = facts.get("company") or "your team"
    event = facts.get("signal") or "your recent news"
    choice = int(hashlib.sha256(prompt.encode()).hexdigest(), 16)
    opening = OPENINGS[choice % len(OPENINGS)].format(event=event)
    closing = CLOSINGS[(choice // len(OPENINGS)) % len(CLOSINGS)]
    title = facts.get("title")
    role = f" As {title} at {company}," if title else f" At {company},"
    subject = f"{event[:1].upper()}{event[1:]} at {company}"
    body = (
        f"Hi {first_name},\n\n{opening}{role} the next few months tend to bring new "
        f"priorities, and we help teams in that moment move faster.\n\n{closing}"
    )
    return subject, body


def _facts(prompt: str) -> dict[str, str]:
    try:
        document = json.loads(prompt)
    except ValueError:
        document = None
    if isinstance(document, dict):
        return _facts_from_json(document)
    facts: dict[str, str] = {}
    for line in prompt.splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip():
            facts[key.strip().lower().replace(" ", "_")] = value.strip()
    if "name" in facts and "first_name" not in facts:
        facts["first_name"] = facts["name"].split()[0]
    return facts


def _facts_from_json(document: Mapping[str, Any]) -> dict[str, str]:
    person = document.get("person") or {}
    account = document.get("account") or {}
    signals = document.get("signals") or []
    facts: dict[str, str] = {}
    first = _pick(person, "first_name", "firstname", "FirstName", "name")
    if first:
        facts["first_name"] = first.split()[0]
    company = _pick(account, "name", "Name", "company") or _pick(person, "company")
    if company:
        facts["company"] = company
    title = _pick(person, "title", "Title", "jobtitle")
    if title:
        facts["title"] = title
    if signals and isinstance(signals[0], Mapping) and signals[0].get("type"):
        facts["signal"] = str(signals[0]["type"]).replace("_", " ").replace("-", " ")
    return facts


def _pick(source: Any, *names: str) -> str | None:
    if not isinstance(source, Mapping):
        return None
    for name in names:
        value = source.get(name)
        if value:
            return str(value)
    return None
