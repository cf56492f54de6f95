"""What the actions share within one service: settings, Redis and connectors.

Connectors are created on first use, so an action service only opens connections
to the vendors its steps call (a workflow's CRM step may pick the other CRM), and
`aclose()` closes exactly those.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from redis.asyncio import Redis

from services.actions.connectors.crm import CrmConnector
from services.actions.settings import (
    ActionSettings,
    CrmExportSettings,
    SequenceSettings,
    WebhookSettings,
)
from signalflow.settings import Settings

log = logging.getLogger(__name__)

CrmTarget = Literal["salesforce", "hubspot"]
T = TypeVar("T")


class Connectors:
    """Each vendor's connector, created and started on first use.

    `factories` maps a vendor name to an async function returning a started
    connector; tests hand in their own to point at emulators. `aclose()` closes
    every connector created, in reverse order.
    """

    def __init__(self, factories: dict[str, Callable[[], Awaitable[Any]]]) -> None:
        self._factories = factories
        self._made: dict[str, Any] = {}
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._lock = asyncio.Lock()

    async def get(self, vendor: str) -> Any:
        """Return the started connector of `vendor`, creating it the first time.

        Raises KeyError naming the vendors known when `vendor` is not one of them.
        """
        made = self._made.get(vendor)
        if made is not None:
            return made
        async with self._lock:
            if vendor not in self._made:
                factory = self._factories.get(vendor)
                if factory is None:
                    raise KeyError(
                        f"expected a connector among {sorted(self._factories)!r}, "
                        f"got {vendor!r}"
                    )
                connector = await factory()
                self._made[vendor] = connector
                self._closers.append(_closer(connector))
                log.info("connected to %s", vendor)
            return self._made[vendor]

    async def crm(self, target: CrmTarget) -> CrmConnector:
        """The CRM connector of `target` (salesforce or hubspot)."""
        connector: CrmConnector = await self.get(target)
        return connector

    async def aclose(self) -> None:
        """Close every connector created, newest first."""
        closers, self._closers = self._closers, []
        self._made.clear()
        for close in reversed(closers):
            try:
                await close()
            except Exception as error:  # closing must go on for the others
                log.warning("closing a connector failed: %s", error)


@dataclass
class Resources:
    """Everything an action may use besides its own step."""

    settings: Settings
    own: ActionSettings
    redis: Redis
    connectors: Connectors
    crm_export: CrmExportSettings = field(default_factory=CrmExportSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    sequence: SequenceSettings = field(default_factory=SequenceSettings)

    @classmethod
    def from_environment(
        cls, settings: Settings, *, redis: Redis, own: ActionSettings
    ) -> Resources:
        """Resources whose connectors and settings come from the environment."""
        return cls(
            settings=settings,
            own=own,
            redis=redis,
            connectors=Connectors(default_factories()),
        )

    def redis_key(self, *parts: str) -> str:
        """A Redis key of the action services: `signalflow:<topic prefix>actions:...`.

        Every key carries the environment's prefix, like the other services' keys,
        so environments sharing one Redis stay apart.
        """
        return ":".join((f"signalflow:{self.settings.topic_prefix}actions", *parts))

    async def aclose(self) -> None:
        """Close the connectors created so far."""
        await self.connectors.aclose()


def default_factories() -> dict[str, Callable[[], Awaitable[Any]]]:
    """Factories building each vendor's connector from its environment settings.

    Vendor modules are imported when first used, so a service loads only the
    client libraries its steps need.
    """
    return {
        vendor: _factory(module, name) for vendor, (module, name) in VENDORS.items()
    }


#: Each vendor's connector: module under `services.actions.connectors`, class.
VENDORS: dict[str, tuple[str, str]] = {
    "salesforce": ("salesforce", "SalesforceConnector"),
    "hubspot": ("hubspot", "HubSpotConnector"),
    "slack": ("slack", "SlackConnector"),
    "smtp": ("smtp", "SmtpConnector"),
    "outreach": ("outreach", "OutreachConnector"),
    "salesloft": ("salesloft", "SalesloftConnector"),
    "openai": ("openai", "OpenAIConnector"),
}


def _factory(module: str, name: str) -> Callable[[], Awaitable[Any]]:
    async def create() -> Any:
        imported = importlib.import_module(f"services.actions.connectors.{module}")
        connector = getattr(imported, name)()
        connector.start()
        return connector

    return create


def _closer(connector: Any) -> Callable[[], Awaitable[None]]:
    for name in ("aclose", "close"):
        method = getattr(connector, name, None)
        if method is not None:
            return _awaiting(method)
    raise TypeError(f"expected a connector with close() or aclose(), got {connector!r}")


def _awaiting(method: Callable[[], Any]) -> Callable[[], Awaitable[None]]:
    async def close() -> None:
        result = method()
        if asyncio.iscoroutine(result):
            await result

    return close
