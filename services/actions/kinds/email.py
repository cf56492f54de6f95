"""The email notification action: the same recipients and templates as Slack,
sent over SMTP as plain text and HTML.

Recipients are people: owners, past owners (from the run's snapshot) and
specific users, by email address. Slack channels and groups are refused when a
workflow is saved (the workflow model allows only people on an email step), so
no channel ever needs turning into addresses here.

The subject renders as plain text (a header shows no markup); the message
renders twice: as plain text, and as HTML with every value from signals and the
CRM escaped, formatting kept (`<strong>`, `<em>`, links to http, https and
mailto only). With the email-template toggle on, both parts add a ready-to-send
email to the prospect with a one-click `mailto:` link. Each recipient gets a
message of their own; recipients already served are remembered, so a retry after
a partial failure sends only the rest. In TEST mode the subject starts with the
test mark.

Outputs: `messages` (sent), `recipients`, `message_ids`.
"""

from __future__ import annotations

import html
import logging

from services.actions.action import Action, Step, would_send
from services.actions.command import Outcome
from services.actions.connectors.smtp import OutgoingEmail
from services.actions.oneclick import mailto
from services.actions.recipients import Deliveries, addressees
from services.actions.resources import Resources
from signalflow.topics import ActionType
from signalflow.workflow.steps import EmailParams

log = logging.getLogger(__name__)


class EmailAction(Action[EmailParams]):
    """Emails a step's notification to each of its recipients."""

    action_type = ActionType.EMAIL

    def __init__(self, resources: Resources) -> None:
        self._resources = resources
        self._deliveries = Deliveries(
            resources.redis,
            namespace=resources.redis_key("delivered", "email"),
            ttl_s=resources.own.result_ttl_s,
        )

    async def perform(self, step: Step[EmailParams]) -> Outcome:
        targets = [
            target
            for target in addressees(step.params.recipients, step.person, step.account)
            if "@" in target.address
        ]
        if not targets:
            return Outcome.skipped("no recipient with an email address was found")
        subject, text, body_html = render_email(step)
        if step.dry_run:
            view = {
                "email": {"to": [t.address for t in targets], "subject": subject},
                "text": text,
                "html": body_html,
            }
            return Outcome.ok(would_send(view))
        smtp = await self._resources.connectors.get("smtp")
        done = await self._deliveries.done(step.command.idempotency_key)
        message_ids: list[str] = []
        for target in targets:
            if target.key in done:
                continue
            outgoing = OutgoingEmail(
                to=[target.address],
                subject=subject,
                text=text,
                html=body_html,
                headers={"X-Signalflow-Run": step.command.run_id},
            )
            message_ids.append(await smtp.send(outgoing))
            await self._deliveries.mark(step.command.idempotency_key, target.key)
        return Outcome.ok(
            {
                "messages": len(message_ids),
                "recipients": ", ".join(t.address for t in targets),
                "message_ids": ", ".join(message_ids),
            }
        )


def render_email(step: Step[EmailParams]) -> tuple[str, str, str]:
    """The subject, plain-text body and HTML body of the step's email."""
    params = step.params
    subject = step.mark + _single_line(
        step.markup(params.subject or "").render_plain(step.context)
    )
    message = step.markup(params.message)
    text = message.render_plain(step.context)
    body_html = message.render_html(step.context)
    if params.include_email_template:
        extra_text, extra_html = _email_template(step)
        text += "\n\n" + extra_text
        body_html += "\n<hr>\n" + extra_html
    return subject, text, f"<html><body>\n{body_html}\n</body></html>"


def _email_template(step: Step[EmailParams]) -> tuple[str, str]:
    params = step.params
    subject = step.markup(params.email_template_subject or "")
    body = step.markup(params.email_template_body or "")
    plain_subject = subject.render_plain(step.context)
    plain_body = body.render_plain(step.context)
    to = str(step.person.get("email") or "")
    link = mailto(to, plain_subject, plain_body) if to else None
    text_lines = [
        "Ready-to-send email",
        f"Subject: {plain_subject}",
        "",
        plain_body,
    ]
    html_lines = [
        "<h3>Ready-to-send email</h3>",
        f"<p><strong>Subject:</strong> {subject.render_html(step.context)}</p>",
        f"<blockquote>{body.render_html(step.context)}</blockquote>",
    ]
    if link is not None:
        text_lines += ["", f"Send it: {link}"]
        html_lines.append(
            f'<p><a href="{html.escape(link, quote=True)}">Send this email</a></p>'
        )
    return "\n".join(text_lines), "\n".join(html_lines)


def _single_line(value: str) -> str:
    return " ".join(value.splitlines()).strip()
