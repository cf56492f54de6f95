"""The AI message action: a personal subject and body from the prospect's signals.

Providers:

- `builtin` (the default) composes from a per-signal phrase book
  (`services.actions.composer`) with no network call;
- `openai_compatible` asks any chat-completions server (the OpenAI connector's
  settings say where and with which model; the step may name another model),
  giving it the person, the account, the signals, the tone and the step's
  instructions, and reads back a subject and a body.

Outputs `subject` and `body`, which later steps read as `$AI Subject` and
`$AI Body` (a sequence step writes them to the platform's custom fields). Writing
changes nothing anywhere, so the built-in writer runs in every mode; in a dry run
the OpenAI-compatible provider is not called: its request shows under
`would_send.*` and the built-in writer fills `subject` and `body`, so the rest of
the dry run still renders.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from services.actions.action import Action, Step, would_send
from services.actions.command import Outcome
from services.actions.composer import Message, compose
from services.actions.errors import PermanentError
from services.actions.resources import Resources
from signalflow.topics import ActionType
from signalflow.workflow.steps import AiMessageParams
from signalflow.workflow.variables import RunContext, as_text

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You write short, personal B2B sales emails. Answer with a JSON object with "
    'exactly two string fields, "subject" and "body". Keep the body under '
    "{max_words} words, in a {tone} tone. Refer to the signals given; invent no "
    "facts."
)


class AiMessageAction(Action[AiMessageParams]):
    """Writes a subject and body with the step's provider."""

    action_type = ActionType.AI_MESSAGE

    def __init__(self, resources: Resources) -> None:
        self._resources = resources

    async def perform(self, step: Step[AiMessageParams]) -> Outcome:
        params = step.params
        if params.provider == "builtin":
            message = compose(
                step.context, tone=params.tone, max_words=params.max_words
            )
            return Outcome.ok({"subject": message.subject, "body": message.body})
        prompt = chat_messages(step)
        if step.dry_run:
            message = compose(
                step.context, tone=params.tone, max_words=params.max_words
            )
            view = {"model": params.model or "(default)", "messages": prompt}
            return Outcome.ok(
                {
                    "subject": message.subject,
                    "body": message.body,
                    **would_send({"openai": {"request": json.dumps(view)}}),
                }
            )
        message = await self._complete(prompt, model=params.model)
        return Outcome.ok({"subject": message.subject, "body": message.body})

    async def _complete(
        self, prompt: list[dict[str, str]], *, model: str | None
    ) -> Message:
        connector = await self._resources.connectors.get("openai")
        answer: str = await connector.complete(prompt, model=model)
        return parse_answer(answer)


def chat_messages(step: Step[AiMessageParams]) -> list[dict[str, str]]:
    """The chat messages asking a model for this prospect's subject and body."""
    params = step.params
    system = SYSTEM_PROMPT.format(max_words=params.max_words, tone=params.tone)
    instructions = step.plain(params.instructions).strip()
    if instructions:
        system += f"\nInstructions from the campaign: {instructions}"
    facts = prospect_facts(step.context)
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": json.dumps(facts, ensure_ascii=False)},
    ]


def prospect_facts(context: RunContext) -> dict[str, Any]:
    """What the model may use: the person, the account and the recent signals."""
    return {
        "person": _profile_facts(context.person),
        "account": _profile_facts(context.account or {}),
        "signals": [
            {
                "type": str(signal.get("type")),
                "scope": str(signal.get("scope")),
                "occurred_at": as_text(signal.get("occurred_at")),
                "attributes": dict(signal.get("attributes") or {}),
            }
            for signal in context.signals[:5]
        ],
    }


def parse_answer(answer: str) -> Message:
    """Read a subject and body from a model's answer.

    Accepts a JSON object (also inside a fenced code block) or `Subject: ...`
    followed by the body. Raises PermanentError for an answer with neither.
    """
    text = answer.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if isinstance(document, Mapping):
        subject, body = document.get("subject"), document.get("body")
        if isinstance(subject, str) and isinstance(body, str) and subject and body:
            return Message(subject.strip(), body.strip())
    head, _, rest = text.partition("\n")
    if head.lower().startswith("subject:") and rest.strip():
        return Message(head.split(":", 1)[1].strip(), rest.strip())
    raise PermanentError(
        f"expected a subject and a body from the model, got {answer[:120]!r}",
        vendor="openai",
    )


def _profile_facts(profile: Mapping[str, Any]) -> dict[str, str]:
    fields = profile.get("fields") or {}
    facts = {name: as_text(value) for name, value in fields.items() if value}
    if profile.get("email"):
        facts["email"] = str(profile["email"])
    return facts
