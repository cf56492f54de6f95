"""Slack Web API emulator: the methods used to notify people, channels and groups.

Methods under `/api/`, taking arguments from the query string, a form body or
a JSON body, as Slack does: `auth.test`, `users.lookupByEmail`,
`conversations.open`, `chat.postMessage` and `usergroups.users.list`.

Failures are Slack-shaped: HTTP 200 with `{"ok": false, "error": "..."}` for
a method's own errors (`users_not_found`, `channel_not_found`, `not_in_channel`,
`no_text`, `invalid_auth`, ...), and HTTP 429 with `Retry-After` and
`{"ok": false, "error": "ratelimited"}` when rate limited.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from signalflow.emulators.base import Emulator, request_params

TEAM_ID = "T0SIGNAL1"
BOT_USER_ID = "U0BOT0001"
BOT_ID = "B0BOT0001"
MAX_TEXT_CHARS = 40_000

DEMO_USERS = (
    ("U0AVERY01", "avery", "Avery Admin", "avery.admin@example.com"),
    ("U0SAM0001", "sam", "Sam Seller", "sam.seller@example.com"),
    ("U0RILEY01", "riley", "Riley Rep", "riley.rep@example.com"),
)
DEMO_CHANNELS = (("C0SIGNALS", "signals"), ("C0SALES01", "sales"))
DEMO_GROUPS = (("S0SDRTEAM", "sdr-team", ("U0SAM0001", "U0RILEY01")),)


@dataclass
class PostedMessage:
    """A message the emulated workspace accepted."""

    channel: str
    ts: str
    text: str
    blocks: list[Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class SlackEmulator(Emulator):
    """A workspace with users, channels, user groups and a bot, all in memory.

    The bot is a member of every channel created with `member=True` (the demo's
    channels are), so posting elsewhere answers `not_in_channel`.
    """

    name: ClassVar[str] = "slack"
    api_root: ClassVar[str] = "/api/"

    def __init__(self, *, token: str | None = None, seed_demo: bool = True) -> None:
        super().__init__(token=token)
        self.users: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        self.usergroups: dict[str, dict[str, Any]] = {}
        self.dms: dict[str, str] = {}
        self.messages: list[PostedMessage] = []
        self._serial = itertools.count(1)
        if seed_demo:
            for user_id, handle, real_name, email in DEMO_USERS:
                self.add_user(user_id, handle, real_name, email)
            for channel_id, channel_name in DEMO_CHANNELS:
                self.add_channel(channel_id, channel_name)
            for group_id, handle, members in DEMO_GROUPS:
                self.add_usergroup(group_id, handle, list(members))

    # -- in-process API --------------------------------------------------------

    def add_user(self, user_id: str, handle: str, real_name: str, email: str) -> None:
        """Add a member of the workspace."""
        self.users[user_id] = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": handle,
            "real_name": real_name,
            "deleted": False,
            "is_bot": False,
            "profile": {
                "email": email,
                "real_name": real_name,
                "display_name": handle,
            },
        }

    def add_channel(self, channel_id: str, name: str, *, member: bool = True) -> None:
        """Add a public channel; `member` says whether the bot is in it."""
        self.channels[channel_id] = {
            "id": channel_id,
            "name": name,
            "is_channel": True,
            "is_member": member,
        }

    def add_usergroup(self, group_id: str, handle: str, members: list[str]) -> None:
        """Add a user group (a "subteam") with these member ids."""
        self.usergroups[group_id] = {"id": group_id, "handle": handle, "users": members}

    def messages_in(self, channel: str) -> list[PostedMessage]:
        """Messages posted to one channel or DM id."""
        return [m for m in self.messages if m.channel == channel]

    # -- HTTP ------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        methods = {
            "auth.test": self._auth_test,
            "users.lookupByEmail": self._lookup_by_email,
            "conversations.open": self._conversations_open,
            "chat.postMessage": self._post_message,
            "usergroups.users.list": self._usergroup_members,
        }
        return [
            Route(f"/api/{name}", _slack_method(handler), methods=["GET", "POST"])
            for name, handler in methods.items()
        ]

    def error_response(self, status: int, message: str) -> Response:
        errors = {429: "ratelimited", 400: "invalid_arguments"}
        return JSONResponse(
            {"ok": False, "error": errors.get(status, "internal_error")},
            status_code=status,
        )

    def unauthorized_response(self) -> Response:
        return JSONResponse({"ok": False, "error": "invalid_auth"})

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": "https://signalflow-demo.slack.com/",
            "team": "signalflow demo",
            "user": "signalflow",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _lookup_by_email(self, params: dict[str, Any]) -> dict[str, Any]:
        email = str(params.get("email", "")).lower()
        if not email:
            raise SlackMethodError("invalid_arguments")
        for user in self.users.values():
            if user["profile"]["email"].lower() == email and not user["deleted"]:
                return {"user": user}
        raise SlackMethodError("users_not_found")

    def _conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        users = [u for u in str(params.get("users", "")).split(",") if u]
        if len(users) != 1:
            raise SlackMethodError(
                "invalid_arguments" if not users else "not_supported"
            )
        user_id = users[0]
        if user_id not in self.users:
            raise SlackMethodError("user_not_found")
        return {"channel": {"id": self._dm_with(user_id)}}

    def _post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(str(params.get("channel", "")))
        text = str(params.get("text") or "")
        blocks = params.get("blocks")
        if not text and not blocks and not params.get("attachments"):
            raise SlackMethodError("no_text")
        if len(text) > MAX_TEXT_CHARS:
            raise SlackMethodError("msg_too_long")
        ts = f"{int(time.time())}.{next(self._serial):06d}"
        extra = {
            k: v for k, v in params.items() if k not in ("channel", "text", "blocks")
        }
        self.messages.append(PostedMessage(channel, ts, text, blocks, extra))
        message = {
            "type": "message",
            "text": text,
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "ts": ts,
        }
        if blocks:
            message["blocks"] = blocks
        return {"channel": channel, "ts": ts, "message": message}

    def _usergroup_members(self, params: dict[str, Any]) -> dict[str, Any]:
        group = self.usergroups.get(str(params.get("usergroup", "")))
        if group is None:
            raise SlackMethodError("no_such_subteam")
        return {"users": list(group["users"])}

    def _resolve_channel(self, channel: str) -> str:
        if not channel:
            raise SlackMethodError("channel_not_found")
        if channel in self.users:
            # Posting to a user id lands in the bot's DM with that user.
            return self._dm_with(channel)
        if channel in self.dms.values():
            return channel
        name = channel.removeprefix("#")
        for known in self.channels.values():
            if channel == known["id"] or name == known["name"]:
                if not known["is_member"]:
                    raise SlackMethodError("not_in_channel")
                return str(known["id"])
        raise SlackMethodError("channel_not_found")

    def _dm_with(self, user_id: str) -> str:
        if user_id not in self.dms:
            self.dms[user_id] = "D" + user_id[1:]
        return self.dms[user_id]


class SlackMethodError(Exception):
    """A method's own failure, answered as `{"ok": false, "error": code}`."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _slack_method(handler: Any) -> Any:
    async def endpoint(request: Request) -> Response:
        params = await request_params(request)
        try:
            body = handler(params)
        except SlackMethodError as error:
            return JSONResponse({"ok": False, "error": error.code})
        return JSONResponse({"ok": True, **body})

    return endpoint
