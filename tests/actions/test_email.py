"""Email notifications through the real consumer, over real SMTP (STARTTLS and
AUTH) to the SMTP emulator."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from services.actions.resources import Resources
from signalflow.emulators.base import Fault
from signalflow.emulators.smtp import SmtpEmulator
from signalflow.topics import ActionType

from .conftest import profile, step_command


def people() -> dict[str, Any]:
    return {
        "person": profile(
            "dana",
            email="dana@acme.io",
            owner="sam@yourco.com",
            past_owners=["old@yourco.com", "ali@yourco.com"],
            fields={"first_name": "Dana", "title": "VP <Sales> & Ops"},
        ),
        "account": profile(
            "acme",
            kind="ACCOUNT",
            owner="kim@yourco.com",
            past_owners=["jo@yourco.com"],
            fields={"name": "Acme", "domain": "acme.io"},
        ),
    }


def email_step(params: dict[str, Any], **options: Any) -> dict[str, Any]:
    defaults = {
        "recipients": [{"kind": "record_owner"}],
        "subject": "New signal: $First Name at $Company Name",
        "message": "*$First Name* is now $Current Title. "
        "[Profile](https://crm.example/p)",
    }
    return step_command(ActionType.EMAIL, {**defaults, **params}, **people(), **options)


def mailbox(running: Any) -> SmtpEmulator:
    emulator = running.smtp_server().emulator
    assert isinstance(emulator, SmtpEmulator)
    return emulator


async def test_every_person_recipient_gets_text_and_escaped_html(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    running = await emulators("smtp")
    harness = await harness_factory(ActionType.EMAIL, vendor_resources)

    result = await harness.run(
        email_step(
            {
                "recipients": [
                    {"kind": "record_owner"},
                    {"kind": "past_record_owner"},
                    {"kind": "account_owner"},
                    {"kind": "past_account_owner"},
                    {"kind": "specific_user", "user": "vp@yourco.com"},
                ]
            }
        )
    )

    assert result["status"] == "OK", result
    messages = mailbox(running).messages
    assert sorted(m.to for m in messages) == [
        "ali@yourco.com",
        "jo@yourco.com",
        "kim@yourco.com",
        "sam@yourco.com",
        "vp@yourco.com",
    ]
    sent = messages[0]
    assert sent.subject == "New signal: Dana at Acme"
    assert sent.authenticated_as == "signalflow"
    assert sent.text is not None and sent.html is not None
    assert "Dana is now VP <Sales> & Ops. Profile (https://crm.example/p)" in sent.text
    assert "<strong>Dana</strong> is now VP &lt;Sales&gt; &amp; Ops." in sent.html
    assert '<a href="https://crm.example/p">Profile</a>' in sent.html
    assert result["outputs"]["messages"] == "5"


async def test_email_template_toggle_adds_a_mailto_link(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    running = await emulators("smtp")
    harness = await harness_factory(ActionType.EMAIL, vendor_resources)

    await harness.run(
        email_step(
            {
                "include_email_template": True,
                "email_template_subject": "$AI Subject",
                "email_template_body": "$AI Body",
            },
            outputs={"0.subject": "Congrats <3", "0.body": "Hi Dana & team"},
            step_id="1",
        )
    )

    (sent,) = mailbox(running).messages
    assert sent.html is not None and sent.text is not None
    assert "Congrats &lt;3" in sent.html and "Hi Dana &amp; team" in sent.html
    link = sent.text.split("Send it: ", 1)[1].strip()
    parts = urlsplit(link)
    assert parts.path == "dana@acme.io"
    assert parse_qs(parts.query) == {
        "subject": ["Congrats <3"],
        "body": ["Hi Dana & team"],
    }


async def test_transient_smtp_failure_is_retryable_and_the_retry_sends_once(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    running = await emulators("smtp")
    mailbox(running).inject(Fault(kind="server_error", path="kim@yourco.com"))
    harness = await harness_factory(ActionType.EMAIL, vendor_resources)
    command = email_step(
        {"recipients": [{"kind": "record_owner"}, {"kind": "account_owner"}]}
    )

    failed = await harness.run(command)
    passed = await harness.run({**command, "attempt": 2})

    assert (failed["status"], failed["retryable"]) == ("ERROR", True)
    assert passed["status"] == "OK"
    assert sorted(m.to for m in mailbox(running).messages) == [
        "kim@yourco.com",
        "sam@yourco.com",
    ]


async def test_rejected_email_is_permanent(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    running = await emulators("smtp")
    mailbox(running).inject(Fault(kind="bad_request", path="*"))
    harness = await harness_factory(ActionType.EMAIL, vendor_resources)

    failed = await harness.run(email_step({}))

    assert (failed["status"], failed["retryable"]) == ("ERROR", False)


async def test_test_mode_marks_the_subject_and_dry_run_sends_nothing(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    running = await emulators("smtp")
    harness = await harness_factory(ActionType.EMAIL, vendor_resources)

    await harness.run(email_step({}, mode="TEST"))
    dry = await harness.run(email_step({}, mode="DRY_RUN"))

    (sent,) = mailbox(running).messages
    assert sent.subject == "[TEST] New signal: Dana at Acme"
    assert dry["outputs"]["would_send.email.to"] == "sam@yourco.com"
    assert dry["outputs"]["would_send.email.subject"] == "New signal: Dana at Acme"
    assert "&lt;Sales&gt;" in dry["outputs"]["would_send.html"]
