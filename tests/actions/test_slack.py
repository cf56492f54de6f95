"""Slack notifications through the real consumer, against the Slack emulator
(driven by slack-sdk's AsyncWebClient)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from services.actions.resources import Resources
from signalflow.emulators import demo
from signalflow.emulators.base import Fault
from signalflow.emulators.slack import SlackEmulator
from signalflow.topics import ActionType

from .conftest import profile, step_command

SAM = ("U0SAM0001", "sam.seller@example.com")
RILEY = ("U0RILEY01", "riley.rep@example.com")
AVERY = ("U0AVERY01", "avery.admin@example.com")


def person(**fields: Any) -> dict[str, Any]:
    return profile(
        "dana",
        email="dana@acme.io",
        owner=SAM[1],
        past_owners=["someone.gone@example.com", RILEY[1]],
        fields={
            "first_name": "Dana",
            "last_name": "Reyes",
            "title": "VP Sales",
            "sdr_owner": AVERY[1],
            **fields,
        },
    )


def account(**fields: Any) -> dict[str, Any]:
    return profile(
        "acme",
        kind="ACCOUNT",
        owner=RILEY[1],
        past_owners=[AVERY[1]],
        fields={"name": "Acme", "domain": "acme.io", **fields},
    )


def slack_step(
    recipients: list[dict[str, Any]],
    message: str = "*New signal* for $First Name at $Company Name :rocket:",
    **options: Any,
) -> dict[str, Any]:
    params: dict[str, Any] = {"recipients": recipients, "message": message}
    params.update(options.pop("params", {}))
    return step_command(
        ActionType.SLACK,
        params,
        person=options.pop("person", person()),
        account=options.pop("account", account()),
        **options,
    )


def workspace(running: Any) -> SlackEmulator:
    emulator = running.server("slack").emulator
    assert isinstance(emulator, SlackEmulator)
    return emulator


def dm_texts(emulator: SlackEmulator, user_id: str) -> list[str]:
    channel = emulator._dm_with(user_id)
    return [message.text for message in emulator.messages_in(channel)]


async def test_every_recipient_kind_gets_the_message(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    running = await emulators("slack")
    harness = await harness_factory(ActionType.SLACK, vendor_resources)
    slack = workspace(running)

    result = await harness.run(
        slack_step(
            [
                {"kind": "record_owner"},
                {"kind": "past_record_owner"},
                {"kind": "account_owner"},
                {"kind": "past_account_owner"},
                {"kind": "record_owner", "field": "sdr_owner"},
                {"kind": "specific_user", "user": SAM[0]},
                {"kind": "slack_channel", "channel": "#signals"},
                {"kind": "slack_group", "group": "S0SDRTEAM"},
            ]
        )
    )

    assert result["status"] == "OK", result
    expected = "*New signal* for Dana at Acme \N{ROCKET}"
    # Each person reached several ways gets one message: Sam (record owner, by id,
    # group member), Riley (latest past record owner, account owner, group member),
    # Avery (past account owner, SDR owner field).
    assert dm_texts(slack, SAM[0]) == [expected]
    assert dm_texts(slack, RILEY[0]) == [expected]
    assert dm_texts(slack, AVERY[0]) == [expected]
    assert [m.text for m in slack.messages_in("C0SIGNALS")] == [expected]
    assert result["outputs"]["messages"] == "4"
    assert slack.received("*", "*users.lookupByEmail*")


async def test_crm_values_with_markup_show_as_text(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    running = await emulators("slack")
    harness = await harness_factory(ActionType.SLACK, vendor_resources)
    hostile = person(title="<!channel> VP & <Head> of <https://evil.example|Sales>")

    await harness.run(
        slack_step(
            [{"kind": "slack_channel", "channel": "signals"}],
            message="_Title:_ $Current Title",
            person=hostile,
        )
    )

    (posted,) = workspace(running).messages_in("C0SIGNALS")
    assert posted.text == (
        "_Title:_ &lt;!channel&gt; VP &amp; &lt;Head&gt; of "
        "&lt;https://evil.example|Sales&gt;"
    )
    assert "<!channel>" not in posted.text


async def test_email_template_toggle_adds_a_ready_email_with_a_mailto_link(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    running = await emulators("slack")
    harness = await harness_factory(ActionType.SLACK, vendor_resources)

    await harness.run(
        slack_step(
            [{"kind": "record_owner"}],
            message="Reach out to $First Name",
            params={
                "include_email_template": True,
                "email_template_subject": "$AI Subject",
                "email_template_body": "$AI Body",
            },
            outputs={"1.subject": "Congrats & more", "1.body": "Hi Dana,\nwell done"},
            step_id="2",
        )
    )

    (text,) = dm_texts(workspace(running), SAM[0])
    assert "*Subject:* Congrats &amp; more" in text
    assert ">Hi Dana,\n>well done" in text
    link = text.split("<mailto:", 1)[1].split("|", 1)[0].replace("&amp;", "&")
    parts = urlsplit("mailto:" + link)
    query = parse_qs(parts.query)
    assert parts.path == "dana@acme.io"
    assert query == {"subject": ["Congrats & more"], "body": ["Hi Dana,\nwell done"]}


async def test_unknown_people_are_reported_and_the_rest_still_notified(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    running = await emulators("slack")
    harness = await harness_factory(ActionType.SLACK, vendor_resources)

    partial = await harness.run(
        slack_step(
            [
                {"kind": "specific_user", "user": "nobody@example.com"},
                {"kind": "record_owner"},
            ]
        )
    )
    nobody = await harness.run(
        slack_step([{"kind": "specific_user", "user": "nobody@example.com"}])
    )

    assert partial["status"] == "OK"
    assert partial["outputs"]["unreached"] == "nobody@example.com"
    assert len(dm_texts(workspace(running), SAM[0])) == 1
    assert (nobody["status"], nobody["retryable"]) == ("ERROR", False)


async def test_rate_limited_slack_is_retryable_and_the_retry_posts_only_the_rest(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    running = await emulators("slack")
    slack = workspace(running)
    harness = await harness_factory(ActionType.SLACK, vendor_resources)
    command = slack_step(
        [
            {"kind": "slack_channel", "channel": "signals"},
            {"kind": "slack_channel", "channel": "sales"},
        ]
    )
    slack.inject(Fault(kind="rate_limit", path="*chat.postMessage*", count=1))
    failed = await harness.run(command)
    await asyncio.sleep(1.1)
    slack.inject(Fault(kind="server_error", path="*chat.postMessage*", count=1))
    await asyncio.sleep(0)

    # The first channel was posted before the 500; the retry posts the second.
    partly = await harness.run({**command, "attempt": 2})
    passed = await harness.run({**command, "attempt": 3})

    assert (failed["status"], failed["retryable"], failed["retry_after_ms"]) == (
        "ERROR",
        True,
        1000,
    )
    assert (partly["status"], partly["retryable"]) == ("ERROR", True)
    assert passed["status"] == "OK"
    assert len(slack.messages_in("C0SIGNALS")) == 1
    assert len(slack.messages_in("C0SALES01")) == 1


async def test_slack_400_fails_the_step_as_permanent_without_leaking_the_token(
    harness_factory,
    vendor_resources: Resources,
    emulators,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    running = await emulators("slack")
    workspace(running).inject(Fault(kind="bad_request", path="*chat.postMessage*"))
    harness = await harness_factory(ActionType.SLACK, vendor_resources)

    result = await harness.run(
        slack_step([{"kind": "slack_channel", "channel": "signals"}])
    )

    assert (result["status"], result["retryable"]) == ("ERROR", False)
    token = demo.SLACK.token
    assert token not in caplog.text and token not in repr(result)


async def test_test_mode_marks_the_message_and_dry_run_posts_nothing(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    running = await emulators("slack")
    harness = await harness_factory(ActionType.SLACK, vendor_resources)
    channel = [{"kind": "slack_channel", "channel": "signals"}]

    tested = await harness.run(slack_step(channel, message="Hi", mode="TEST"))
    dry = await harness.run(
        slack_step(channel + [{"kind": "record_owner"}], message="Hi", mode="DRY_RUN")
    )

    assert tested["status"] == "OK"
    assert [m.text for m in workspace(running).messages_in("C0SIGNALS")] == [
        "[TEST] Hi"
    ]
    assert dry["outputs"]["would_send.slack.channel"] == "#signals"
    assert dry["outputs"]["would_send.slack.users"] == SAM[1]
    assert dry["outputs"]["would_send.text"] == "Hi"
    assert len(workspace(running).received("POST", "*chat.postMessage*")) == 1
