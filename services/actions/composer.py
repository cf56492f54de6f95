"""The built-in message writer: a personal subject and body with no network call.

It picks the signal that started the run (else the newest) and a second signal of
another type, and composes from a per-signal phrase book written in the template
language, so the values come from the run's context exactly as a user's template
would read them (`${Funding Round|new funding}` falls back when the value is
missing). The tone chooses the greeting, the ask and the sign-off; the body is
capped at `max_words`. Free-text instructions need a language model: they are
for the OpenAI-compatible provider and the built-in writer ignores them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from signalflow.workflow.templates import parse_template
from signalflow.workflow.variables import RunContext


@dataclass(frozen=True)
class Phrases:
    """What to say about one signal type: a subject and an opening sentence."""

    subject: str
    opener: str


@dataclass(frozen=True)
class Tone:
    """How a message sounds: greeting, the ask, and the sign-off."""

    greeting: str
    ask: str
    sign_off: str


@dataclass(frozen=True)
class Message:
    """A written message."""

    subject: str
    body: str


PHRASES: Mapping[str, Phrases] = {
    "funding": Phrases(
        "Congrats on the ${Funding Round|new funding}, ${Company Name|team}",
        "Congratulations to ${Company Name|your team} on the "
        "${Funding Round|latest funding} round",
    ),
    "hiring_surge": Phrases(
        "Scaling ${Hiring Department|the team} at ${Company Name|your company}",
        "I noticed ${Company Name|your company} is hiring quickly in "
        "${Hiring Department|several teams}",
    ),
    "new_tech": Phrases(
        "${New Technology|Your new tooling} at ${Company Name|your company}",
        "I saw that ${Company Name|your team} recently adopted "
        "${New Technology|a new platform}",
    ),
    "job_change": Phrases(
        "Congrats on the new role, ${First Name|there}",
        "Congratulations on starting at ${Company Name|your new company} as "
        "${Current Title|part of the team}",
    ),
    "new_hire": Phrases(
        "Welcome to ${Company Name|the team}, ${First Name|there}",
        "Welcome aboard at ${Company Name|your new company}",
    ),
    "promotion": Phrases(
        "Congrats on the promotion, ${First Name|there}",
        "Congratulations on your promotion to ${Current Title|your new role}",
    ),
    "multi_thread": Phrases(
        "${Company Name|Your team} and what we are working on",
        "Several of your colleagues at ${Company Name|your company} have been "
        "looking at how we help teams like yours",
    ),
    "past_champion": Phrases(
        "Working together again, ${First Name|there}?",
        "It was great working with you at "
        "${Champion Past Company|your previous company}",
    ),
}
GENERIC = Phrases(
    "An idea for ${Company Name|your team}",
    "I have been following ${Company Name|your company} and had an idea to share",
)
SECOND_LINES: Mapping[str, str] = {
    "funding": "With the new funding, growth plans usually move fast",
    "hiring_surge": "Teams growing that quickly often need to ramp new people fast",
    "new_tech": "Teams adopting ${New Technology|new tooling} often pair it with us",
    "job_change": "New leaders often take a fresh look at their stack",
    "new_hire": "The first months in a role are a great time to set things up right",
    "promotion": "A bigger remit often brings new priorities",
    "multi_thread": "It sounds like the topic is on the agenda across the team",
    "past_champion": "I would love to help you bring the same results to "
    "${Company Name|your new team}",
}
TONES: Mapping[str, Tone] = {
    "professional": Tone(
        "Hi ${First Name|there},",
        "Would you be open to a short call next week?",
        "Best regards,",
    ),
    "friendly": Tone(
        "Hi ${First Name|there}!",
        "Would love to hear how things are going. Up for a quick chat?",
        "Cheers,",
    ),
    "casual": Tone("Hey ${First Name|there},", "Worth a quick chat?", "Thanks,"),
    "direct": Tone(
        "${First Name|Hello},",
        "Do you have 15 minutes this week?",
        "Regards,",
    ),
    "enthusiastic": Tone(
        "Hi ${First Name|there}!",
        "I would love to show you what teams like yours are doing. Can we find "
        "20 minutes?",
        "All the best,",
    ),
}


def compose(context: RunContext, *, tone: str, max_words: int) -> Message:
    """Write a subject and body for the run's prospect from its signals.

    Raises KeyError for a tone the catalog does not have.
    """
    voice = TONES[tone]
    first, second = _chosen_signals(context)
    phrases = PHRASES.get(str(first.get("type")), GENERIC) if first else GENERIC
    lines = [_render(phrases.opener, context) + "."]
    if second is not None:
        follow = SECOND_LINES.get(str(second.get("type")))
        if follow:
            lines.append(_render(follow, context) + ".")
    lines.append(_render(voice.ask, context))
    body = "\n\n".join(
        [
            _render(voice.greeting, context),
            _cap_words(" ".join(lines), max_words),
            f"{voice.sign_off}\n{_signature(context)}",
        ]
    )
    return Message(_render(phrases.subject, context), body)


def _chosen_signals(
    context: RunContext,
) -> tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]:
    first = context.trigger or (context.signals[0] if context.signals else None)
    if first is None:
        return None, None
    second = next(
        (s for s in context.signals if s.get("type") != first.get("type")), None
    )
    return first, second


def _signature(context: RunContext) -> str:
    for source in ("${Record Owner}", "${Account Owner}"):
        name = _render(source, context)
        if name and "@" not in name:
            return name
    return "Your account team"


def _render(source: str, context: RunContext) -> str:
    return parse_template(source, markup=False).render_plain(context).strip()


def _cap_words(text: str, max_words: int) -> str:
    words = text.split(" ")
    if len(words) <= max_words:
        return text
    return " ".join(words[:max_words]).rstrip(",.;:") + "..."
