"""The Slack notification action.

Each recipient kind resolves to a place to post (`services.actions.recipients`):
owners, past owners and specific users are found by email with
`users.lookupByEmail` (or taken as they are when given as a Slack user id, `U...`)
and get a direct message; a channel gets the message in the channel; a user group
(by id, `S...`) is expanded to its members, who each get a direct message.

The message renders to Slack mrkdwn: `*bold*`, `_italic_`, links and `:emoji:`
from the template, while every value from signals and the CRM is escaped, so a
value such as `<!channel>` or `a & b <c>` shows as text and cannot mention or
link anyone. With the email-template toggle on, the message adds a ready-to-send
email to the prospect: its subject and body, and a one-click `mailto:` link that
opens it in the recipient's mail client.

A recipient Slack does not know is reported in the `unreached` output; the step
fails permanently only when nobody could be reached. Posts already made for this
step are remembered, so a retry after a partial failure posts only the rest.
In TEST mode the message starts with the test mark.

Outputs: `messages` (the step's posts), `recipients` (who got it), `unreached`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from services.actions.action import Action, Step, would_send
from services.actions.command import Outcome
from services.actions.errors import PermanentError
from services.actions.oneclick import mailto
from services.actions.recipients import Addressee, Deliveries, addressees
from services.actions.resources import Resources
from signalflow.topics import ActionType
from signalflow.workflow.steps import SlackParams

log = logging.getLogger(__name__)

SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{6,}$")
SLACK_GROUP_ID = re.compile(r"^S[A-Z0-9]{6,}$")


class SlackAction(Action[SlackParams]):
    """Posts a step's message to each of its recipients."""

    action_type = ActionType.SLACK

    def __init__(self, resources: Resources) -> None:
        self._resources = resources
        self._deliveries = Deliveries(
            resources.redis,
            namespace=resources.redis_key("delivered", "slack"),
            ttl_s=resources.own.result_ttl_s,
        )

    async def perform(self, step: Step[SlackParams]) -> Outcome:
        text = render_message(step)
        targets = addressees(step.params.recipients, step.person, step.account)
        if not targets:
            return Outcome.skipped("no recipient could be found for this prospect")
        if step.dry_run:
            return Outcome.ok(would_send(_dry_run_view(targets, text)))
        slack = await self._resources.connectors.get("slack")
        destinations, reached, unreached = await self._destinations(slack, targets)
        if not destinations:
            raise PermanentError(
                f"no recipient of the Slack message is in the workspace: {unreached!r}",
                vendor="slack",
            )
        key = step.command.idempotency_key
        done = await self._deliveries.done(key)
        for destination in destinations:
            if destination in done:
                continue
            await _post(slack, destination, text)
            await self._deliveries.mark(key, destination)
        return Outcome.ok(
            {
                "messages": len(destinations),
                "recipients": ", ".join(reached),
                "unreached": ", ".join(unreached),
            }
        )

    async def _destinations(
        self, slack: Any, targets: list[Addressee]
    ) -> tuple[list[str], list[str], list[str]]:
        """Resolve addressees to Slack destinations (`user:U..`, `channel:#..`).

        Returns the distinct destinations in order, the addressees reached and
        the ones Slack does not know.
        """
        destinations: dict[str, None] = {}
        reached: list[str] = []
        unreached: list[str] = []
        for target in targets:
            found = await self._resolve(slack, target)
            if not found:
                log.warning("no Slack user for recipient %s", target.via)
                unreached.append(target.address)
                continue
            reached.append(target.address)
            destinations.update(dict.fromkeys(found))
        return list(destinations), reached, unreached

    async def _resolve(self, slack: Any, target: Addressee) -> list[str]:
        if target.kind == "channel":
            return [f"channel:{_channel(target.address)}"]
        if target.kind == "group":
            if not SLACK_GROUP_ID.match(target.address):
                raise PermanentError(
                    f"expected a Slack user group id such as S0123ABCD, got "
                    f"{target.address!r}",
                    vendor="slack",
                )
            members = await slack.group_members(target.address)
            return [f"user:{member}" for member in members]
        user_id = await _user_id(slack, target.address)
        return [] if user_id is None else [f"user:{user_id}"]


async def _user_id(slack: Any, address: str) -> str | None:
    if SLACK_USER_ID.match(address):
        return address
    if "@" not in address:
        return None
    user = await slack.lookup_user(address)
    return None if user is None else str(user.id)


async def _post(slack: Any, destination: str, text: str) -> None:
    kind, _, where = destination.partition(":")
    if kind == "channel":
        await slack.post_to_channel(where, text)
    else:
        await slack.post_to_user(where, text)


def render_message(step: Step[SlackParams]) -> str:
    """The Slack mrkdwn text of the step's message, with the optional email."""
    params = step.params
    text = step.mark + step.markup(params.message).render_slack(step.context)
    if params.include_email_template:
        text += "\n\n" + _email_section(step)
    return text


def _email_section(step: Step[SlackParams]) -> str:
    params = step.params
    subject_source = params.email_template_subject or ""
    body_source = params.email_template_body or ""
    subject = step.markup(subject_source).render_plain(step.context)
    body = step.markup(body_source).render_plain(step.context)
    shown_subject = step.markup(subject_source).render_slack(step.context)
    shown_body = step.markup(body_source).render_slack(step.context)
    quoted = "\n".join(f">{line}" for line in shown_body.splitlines() or [""])
    lines = [
        "*Ready-to-send email*",
        f"*Subject:* {shown_subject}",
        quoted,
    ]
    to = step.person.get("email")
    if to:
        link = mailto(str(to), subject, body)
        lines.append(f"<{_slack_url(link)}|Send this email>")
    return "\n".join(lines)


def _slack_url(url: str) -> str:
    return url.replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E")


def _channel(address: str) -> str:
    if re.match(r"^[CGD][A-Z0-9]{6,}$", address):
        return address
    return f"#{address}"


def _dry_run_view(targets: list[Addressee], text: str) -> dict[str, Any]:
    view: dict[str, Any] = {"text": text}
    by_kind = {
        "users": [t.address for t in targets if t.kind == "person"],
        "channel": [_channel(t.address) for t in targets if t.kind == "channel"],
        "groups": [t.address for t in targets if t.kind == "group"],
    }
    view["slack"] = {kind: found for kind, found in by_kind.items() if found}
    return view
