"""Slack through slack-sdk's `AsyncWebClient`: find people, DM them, post to
channels, and reach user groups.

The client's own retry handlers are turned off: retries are the runner's job
(through the delay topics), so every failure surfaces at once as an ActionError.
Authentication is a bot token (`SIGNALFLOW_SLACK_BOT_TOKEN`) with the scopes
`chat:write`, `im:write`, `users:read.email` and `usergroups:read`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from services.actions.connectors.http import parse_retry_after
from services.actions.connectors.limits import CallLimiter
from services.actions.connectors.settings import ConnectorSettings
from services.actions.errors import (
    ActionError,
    PermanentError,
    RetryableError,
    scrub_secrets,
)
from signalflow.emulators import demo

logger = logging.getLogger(__name__)

VENDOR = "slack"
# Slack's own error codes for failures on its side: worth another attempt.
RETRYABLE_CODES = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable"}
    | {"request_timeout"}
)


class SlackSettings(ConnectorSettings):
    """The Slack workspace's API and bot token (`SIGNALFLOW_SLACK_*`)."""

    model_config = SettingsConfigDict(env_prefix="SIGNALFLOW_SLACK_", extra="ignore")

    base_url: str = Field(
        default=f"http://{demo.DEMO_HOST}:{demo.SLACK.port}/api/",
        description="https://slack.com/api/ for the real service.",
    )
    bot_token: SecretStr = Field(default=SecretStr(demo.SLACK.token))


@dataclass(frozen=True)
class SlackIdentity:
    """Who the token is: the workspace, the bot user and the bot."""

    team_id: str
    user_id: str
    bot_id: str | None
    url: str


@dataclass(frozen=True)
class SlackUser:
    """A member of the workspace."""

    id: str
    name: str
    real_name: str | None
    email: str | None


@dataclass(frozen=True)
class SlackPost:
    """Where a message landed: the channel (or DM) id and its timestamp id."""

    channel: str
    ts: str


class SlackConnector:
    """Posts to users, channels and user groups of one Slack workspace.

    Use as `async with` (or `start()` and `close()`); every method raises
    ActionError on failure, RetryableError for rate limits (with Slack's
    Retry-After), timeouts, connection failures and Slack's own server errors.
    """

    def __init__(self, settings: SlackSettings | None = None) -> None:
        self.settings = settings or SlackSettings()
        self.limiter = CallLimiter(
            VENDOR,
            max_concurrency=self.settings.max_concurrency,
            rate_per_s=self.settings.rate_per_s,
        )
        self._session: aiohttp.ClientSession | None = None
        self._client: AsyncWebClient | None = None

    async def __aenter__(self) -> SlackConnector:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def start(self) -> None:
        """Open the HTTP session; raises RuntimeError when already started."""
        if self._client is not None:
            raise RuntimeError("the Slack connector is already started")
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s)
        )
        self._client = AsyncWebClient(
            token=self.settings.bot_token.get_secret_value(),
            base_url=self.settings.base_url,
            timeout=int(max(1, self.settings.timeout_s)),
            session=self._session,
            retry_handlers=[],
        )

    async def close(self) -> None:
        """Close the HTTP session; calls still in flight fail."""
        session, self._session, self._client = self._session, None, None
        if session is not None:
            await session.close()

    # -- who ---------------------------------------------------------------------

    async def auth_test(self) -> SlackIdentity:
        """Check the token and say whom it belongs to."""
        data = await self._call("auth.test", lambda c: c.auth_test())
        return SlackIdentity(
            team_id=str(data["team_id"]),
            user_id=str(data["user_id"]),
            bot_id=data.get("bot_id"),
            url=str(data.get("url", "")),
        )

    async def lookup_user(self, email: str) -> SlackUser | None:
        """The member with this e-mail address, or None when there is none."""
        try:
            data = await self._call(
                "users.lookupByEmail", lambda c: c.users_lookupByEmail(email=email)
            )
        except PermanentError as error:
            if "users_not_found" in error.message:
                return None
            raise
        user = data["user"]
        profile = user.get("profile") or {}
        return SlackUser(
            id=str(user["id"]),
            name=str(user.get("name", "")),
            real_name=user.get("real_name") or profile.get("real_name"),
            email=profile.get("email"),
        )

    async def group_members(self, usergroup_id: str) -> list[str]:
        """The user ids in a user group."""
        data = await self._call(
            "usergroups.users.list",
            lambda c: c.usergroups_users_list(usergroup=usergroup_id),
        )
        return [str(user_id) for user_id in data.get("users", [])]

    # -- posting -------------------------------------------------------------------

    async def open_dm(self, user_id: str) -> str:
        """The id of the bot's direct-message channel with a user."""
        data = await self._call(
            "conversations.open", lambda c: c.conversations_open(users=user_id)
        )
        return str(data["channel"]["id"])

    async def post_to_user(
        self, user_id: str, text: str, *, blocks: list[dict[str, Any]] | None = None
    ) -> SlackPost:
        """Send a direct message to a user."""
        channel = await self.open_dm(user_id)
        return await self.post_to_channel(channel, text, blocks=blocks)

    async def post_to_channel(
        self, channel: str, text: str, *, blocks: list[dict[str, Any]] | None = None
    ) -> SlackPost:
        """Post to a channel (an id, or a name such as `#sales`) or a DM id.

        `text` is Slack mrkdwn, already escaped by the caller; it is also the
        notification fallback when `blocks` are given, so it may not be empty
        (PermanentError).
        """
        if not text.strip():
            raise PermanentError(
                f"expected non-empty text for a Slack message, got {text!r}",
                vendor=VENDOR,
            )
        data = await self._call(
            "chat.postMessage",
            lambda c: c.chat_postMessage(channel=channel, text=text, blocks=blocks),
        )
        return SlackPost(channel=str(data["channel"]), ts=str(data["ts"]))

    async def post_to_group_members(
        self,
        usergroup_id: str,
        text: str,
        *,
        blocks: list[dict[str, Any]] | None = None,
    ) -> list[SlackPost]:
        """DM every member of a user group; raises on the first failure."""
        posts = []
        for user_id in await self.group_members(usergroup_id):
            posts.append(await self.post_to_user(user_id, text, blocks=blocks))
        return posts

    async def mention_group(
        self,
        usergroup_id: str,
        channel: str,
        text: str,
        *,
        blocks: list[dict[str, Any]] | None = None,
    ) -> SlackPost:
        """Post to a channel, mentioning the user group so its members are told."""
        mention = f"<!subteam^{usergroup_id}> {text}"
        return await self.post_to_channel(channel, mention, blocks=blocks)

    # -- the library boundary ----------------------------------------------------

    async def _call(
        self,
        method: str,
        call: Callable[[AsyncWebClient], Awaitable[AsyncSlackResponse]],
    ) -> dict[str, Any]:
        if self._client is None:
            raise RuntimeError("the Slack connector is not started")
        client = self._client
        async with self.limiter.slot():
            try:
                response = await call(client)
            except SlackApiError as exc:
                raise self._translate_answer(method, exc) from exc
            except TimeoutError as exc:
                raise RetryableError(
                    f"slack did not answer {method} within {self.settings.timeout_s}s",
                    vendor=VENDOR,
                ) from exc
            except aiohttp.InvalidURL as exc:
                raise PermanentError(
                    f"cannot call slack at {self.settings.base_url!r}", vendor=VENDOR
                ) from exc
            except aiohttp.ClientError as exc:
                raise RetryableError(
                    f"could not reach slack for {method}: {type(exc).__name__}",
                    vendor=VENDOR,
                ) from exc
            except SlackClientError as exc:
                raise PermanentError(
                    f"slack client refused {method}: {self._scrub(str(exc))}",
                    vendor=VENDOR,
                ) from exc
        data = response.data
        if not isinstance(data, dict):
            raise PermanentError(
                f"expected a JSON object from slack {method}, got {str(data)[:80]!r}",
                vendor=VENDOR,
                status=response.status_code,
            )
        return data

    def _translate_answer(self, method: str, exc: SlackApiError) -> ActionError:
        response = exc.response
        status = int(response.status_code)
        data = response.data if isinstance(response.data, dict) else {}
        code = str(data.get("error") or f"http_{status}")
        message = self._scrub(f"slack {method} failed: {code}")
        retry_after_s = parse_retry_after(_header(response.headers, "Retry-After"))
        if status == 429 or code == "ratelimited":
            if retry_after_s is not None:
                self.limiter.back_off(retry_after_s)
            return RetryableError(
                message, vendor=VENDOR, status=429, retry_after_s=retry_after_s
            )
        if status >= 500 or code in RETRYABLE_CODES:
            return RetryableError(
                message, vendor=VENDOR, status=status, retry_after_s=retry_after_s
            )
        return PermanentError(message, vendor=VENDOR, status=status)

    def _scrub(self, text: str) -> str:
        return scrub_secrets(text, [self.settings.bot_token.get_secret_value()])


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    for key, value in dict(headers).items():
        if str(key).lower() == name.lower():
            return str(value)
    return None
