"""Run any set of emulators together: `running_emulators`, for tests and the demo.

    async with running_emulators("slack", "hubspot", tls_dir=tmp_path) as running:
        url = running.base_url("slack")
        running.server("slack").emulator.inject(Fault(kind="rate_limit"))

`connector_env()` gives the environment variables that point every connector
at the running emulators.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from signalflow.emulators import demo
from signalflow.emulators.base import Emulator
from signalflow.emulators.hubspot import HubSpotEmulator
from signalflow.emulators.openai import OpenAIEmulator
from signalflow.emulators.outreach import OutreachEmulator
from signalflow.emulators.salesforce import SalesforceEmulator
from signalflow.emulators.salesloft import SalesloftEmulator
from signalflow.emulators.server import EmulatorServer
from signalflow.emulators.slack import SlackEmulator
from signalflow.emulators.smtp import SmtpEmulator, SmtpServer, SmtpTlsMode
from signalflow.emulators.tls import TlsFiles, ensure_tls_files

logger = logging.getLogger(__name__)

HTTP_EMULATORS = ("salesforce", "hubspot", "slack", "outreach", "salesloft", "openai")
EMULATOR_NAMES = (*HTTP_EMULATORS, "smtp")
DEMO_PORTS = {
    "salesforce": demo.SALESFORCE.port,
    "hubspot": demo.HUBSPOT.port,
    "slack": demo.SLACK.port,
    "outreach": demo.OUTREACH.port,
    "salesloft": demo.SALESLOFT.port,
    "openai": demo.OPENAI.port,
    "smtp": demo.SMTP.port,
    "smtp-control": demo.SMTP_CONTROL_PORT,
}


def build_emulator(name: str) -> Emulator:
    """A fresh HTTP emulator by name, with the demo's token and seed data."""
    if name == "salesforce":
        return SalesforceEmulator(token=demo.SALESFORCE.token)
    if name == "hubspot":
        return HubSpotEmulator(token=demo.HUBSPOT.token)
    if name == "slack":
        return SlackEmulator(token=demo.SLACK.token)
    if name == "outreach":
        return OutreachEmulator(token=demo.OUTREACH.token)
    if name == "salesloft":
        return SalesloftEmulator(token=demo.SALESLOFT.token)
    if name == "openai":
        return OpenAIEmulator(token=demo.OPENAI.token)
    raise ValueError(f"expected one of {HTTP_EMULATORS!r}, got {name!r}")


@dataclass
class RunningEmulators:
    """The emulators started by `running_emulators`, by name."""

    tls: TlsFiles
    http: dict[str, EmulatorServer] = field(default_factory=dict)
    smtp: SmtpServer | None = None

    def server(self, name: str) -> EmulatorServer:
        """The running HTTP server of one emulator."""
        if name not in self.http:
            raise KeyError(
                f"emulator {name!r} is not running; have {sorted(self.http)}"
            )
        return self.http[name]

    def base_url(self, name: str) -> str:
        """The URL to configure the vendor's client with."""
        if name == "smtp":
            return self._smtp().url
        return self.server(name).base_url

    def smtp_server(self) -> SmtpServer:
        """The running SMTP emulator."""
        return self._smtp()

    def _smtp(self) -> SmtpServer:
        if self.smtp is None:
            raise KeyError("the smtp emulator is not running")
        return self.smtp

    def connector_env(self) -> dict[str, str]:
        """Environment variables that point every connector at these emulators."""
        env: dict[str, str] = {}
        if "salesforce" in self.http:
            env |= {
                "SIGNALFLOW_SALESFORCE_INSTANCE_URL": self.base_url("salesforce"),
                "SIGNALFLOW_SALESFORCE_ACCESS_TOKEN": demo.SALESFORCE.token,
                "SIGNALFLOW_SALESFORCE_CA_FILE": str(self.tls.ca_file),
            }
        simple = {
            "hubspot": ("ACCESS_TOKEN", demo.HUBSPOT.token),
            "slack": ("BOT_TOKEN", demo.SLACK.token),
            "outreach": ("ACCESS_TOKEN", demo.OUTREACH.token),
            "salesloft": ("API_KEY", demo.SALESLOFT.token),
            "openai": ("API_KEY", demo.OPENAI.token),
        }
        for name, (token_var, token) in simple.items():
            if name in self.http:
                prefix = f"SIGNALFLOW_{name.upper()}_"
                env[prefix + "BASE_URL"] = self.base_url(name)
                env[prefix + token_var] = token
        if "outreach" in self.http:
            # The demo org's first mailbox belongs to its first user.
            env["SIGNALFLOW_OUTREACH_DEFAULT_MAILBOX_ID"] = "1"
        if self.smtp is not None:
            env |= self.smtp.connector_env()
        return env


@contextlib.asynccontextmanager
async def running_emulators(
    *names: str,
    ports: Mapping[str, int] | None = None,
    tls_dir: Path,
    smtp_tls: SmtpTlsMode = "starttls",
) -> AsyncIterator[RunningEmulators]:
    """Start the named emulators (all when none are named), yield them, stop them.

    Ports default to free loopback ports; pass `DEMO_PORTS` for the demo's fixed
    ones. The TLS CA and certificate live in `tls_dir`. Raises ValueError for an
    unknown name and OSError when a requested port is taken.
    """
    wanted = names or EMULATOR_NAMES
    unknown = sorted(set(wanted) - set(EMULATOR_NAMES))
    if unknown:
        raise ValueError(
            f"expected emulator names from {EMULATOR_NAMES}, got {unknown}"
        )
    ports = ports or {}
    running = RunningEmulators(tls=ensure_tls_files(tls_dir))
    async with contextlib.AsyncExitStack() as stack:
        for name in (n for n in HTTP_EMULATORS if n in wanted):
            tls = running.tls if name == "salesforce" else None
            server = EmulatorServer(
                build_emulator(name), port=ports.get(name, 0), tls=tls
            )
            running.http[name] = await stack.enter_async_context(server)
        if "smtp" in wanted:
            smtp = SmtpServer(
                SmtpEmulator(username=demo.SMTP_USERNAME, password=demo.SMTP.token),
                port=ports.get("smtp", 0),
                control_port=ports.get("smtp-control", 0),
                tls=running.tls,
                tls_mode=smtp_tls,
            )
            running.smtp = await stack.enter_async_context(smtp)
        yield running
