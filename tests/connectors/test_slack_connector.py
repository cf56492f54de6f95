"""The Slack connector through slack-sdk, against the emulator over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from services.actions.connectors.slack import SlackConnector, SlackSettings
from services.actions.errors import PermanentError, RetryableError
from signalflow.emulators.base import Fault
from signalflow.emulators.server import EmulatorServer
from signalflow.emulators.slack import SlackEmulator

TOKEN = "xoxb-1234-test-token"


@pytest.fixture
async def workspace() -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(SlackEmulator(token=TOKEN)) as server:
        yield server


@pytest.fixture
async def slack(workspace: EmulatorServer) -> AsyncIterator[SlackConnector]:
    settings = SlackSettings(
        base_url=workspace.base_url, bot_token=SecretStr(TOKEN), timeout_s=0.5
    )
    async with SlackConnector(settings) as connector:
        yield connector


def emulator(server: EmulatorServer) -> SlackEmulator:
    assert isinstance(server.emulator, SlackEmulator)
    return server.emulator


async def test_auth_test_names_the_bot(slack: SlackConnector) -> None:
    identity = await slack.auth_test()

    assert identity.user_id.startswith("U") and identity.team_id.startswith("T")


async def test_user_is_looked_up_by_email_and_messaged(
    slack: SlackConnector, workspace: EmulatorServer
) -> None:
    user = await slack.lookup_user("Sam.Seller@example.com")
    assert user is not None and user.real_name == "Sam Seller"

    post = await slack.post_to_user(user.id, "*Ada* changed jobs :tada:")

    assert post.channel.startswith("D")
    [message] = emulator(workspace).messages_in(post.channel)
    assert message.text == "*Ada* changed jobs :tada:" and message.ts == post.ts
    assert workspace.emulator.received("POST", "/api/conversations.open")


async def test_unknown_email_is_none(slack: SlackConnector) -> None:
    assert await slack.lookup_user("nobody@example.com") is None


async def test_channel_post_by_name(
    slack: SlackConnector, workspace: EmulatorServer
) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*new*"}}]

    post = await slack.post_to_channel("#sales", "new signal", blocks=blocks)

    [message] = emulator(workspace).messages_in(post.channel)
    assert post.channel == "C0SALES01" and message.blocks == blocks


async def test_group_members_each_get_a_dm(
    slack: SlackConnector, workspace: EmulatorServer
) -> None:
    posts = await slack.post_to_group_members("S0SDRTEAM", "heads up")

    assert len(posts) == 2
    assert {p.channel for p in posts} == {"D0SAM0001", "D0RILEY01"}


async def test_group_is_mentioned_in_a_channel(
    slack: SlackConnector, workspace: EmulatorServer
) -> None:
    post = await slack.mention_group("S0SDRTEAM", "C0SIGNALS", "heads up")

    [message] = emulator(workspace).messages_in(post.channel)
    assert message.text == "<!subteam^S0SDRTEAM> heads up"


async def test_a_channel_without_the_bot_is_permanent(
    slack: SlackConnector, workspace: EmulatorServer
) -> None:
    emulator(workspace).add_channel("C0PRIVATE", "private", member=False)

    with pytest.raises(PermanentError, match="not_in_channel"):
        await slack.post_to_channel("C0PRIVATE", "hello")


async def test_an_empty_message_is_permanent(slack: SlackConnector) -> None:
    with pytest.raises(PermanentError, match="non-empty text"):
        await slack.post_to_channel("#sales", " ")


async def test_rate_limit_is_retryable_with_retry_after(
    slack: SlackConnector, workspace: EmulatorServer
) -> None:
    workspace.emulator.inject(
        Fault(kind="rate_limit", path="/api/chat.postMessage", retry_after_s=4)
    )

    with pytest.raises(RetryableError, match="ratelimited") as caught:
        await slack.post_to_channel("#sales", "hello")

    assert caught.value.status == 429 and caught.value.retry_after_s == 4


async def test_server_error_is_retryable(
    slack: SlackConnector, workspace: EmulatorServer
) -> None:
    workspace.emulator.inject(Fault(kind="server_error"))

    with pytest.raises(RetryableError) as caught:
        await slack.auth_test()

    assert caught.value.status == 500


async def test_bad_request_is_permanent(
    slack: SlackConnector, workspace: EmulatorServer
) -> None:
    workspace.emulator.inject(Fault(kind="bad_request"))

    with pytest.raises(PermanentError) as caught:
        await slack.auth_test()

    assert caught.value.status == 400


async def test_hang_past_the_timeout_is_retryable(
    slack: SlackConnector, workspace: EmulatorServer
) -> None:
    workspace.emulator.inject(Fault(kind="hang", hang_s=5))

    with pytest.raises(RetryableError, match="did not answer"):
        await slack.auth_test()


async def test_a_wrong_token_is_permanent_and_not_quoted(
    workspace: EmulatorServer,
) -> None:
    settings = SlackSettings(
        base_url=workspace.base_url, bot_token=SecretStr("xoxb-wrong")
    )
    async with SlackConnector(settings) as connector:
        with pytest.raises(PermanentError, match="invalid_auth") as caught:
            await connector.auth_test()

    assert "xoxb-wrong" not in repr(caught.value)
