"""Where the demo's emulators listen and which tokens they accept.

The connector settings default to these, so a laptop demo needs no configuration;
with real credentials configured the same connectors talk to the real services.
The tokens are not secrets: they only open the local emulators.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEMO_HOST = "127.0.0.1"


@dataclass(frozen=True)
class DemoEndpoint:
    """One emulator's fixed demo port and the credential it expects."""

    port: int
    token: str


SALESFORCE = DemoEndpoint(port=8701, token="demo-salesforce-session")
HUBSPOT = DemoEndpoint(port=8702, token="demo-hubspot-private-app")
SLACK = DemoEndpoint(port=8703, token="xoxb-demo-slack-bot")
OUTREACH = DemoEndpoint(port=8704, token="demo-outreach-oauth")
SALESLOFT = DemoEndpoint(port=8705, token="demo-salesloft-key")
OPENAI = DemoEndpoint(port=8706, token="sk-demo-openai")
SMTP = DemoEndpoint(port=8725, token="demo-smtp-password")
SMTP_CONTROL_PORT = 8726
SMTP_USERNAME = "signalflow"


def demo_tls_dir() -> Path:
    """Where `signalflow emulators serve` keeps the demo's TLS CA and certificate."""
    return Path.home() / ".cache" / "signalflow" / "emulators" / "tls"


def demo_ca_file() -> Path:
    """The CA certificate the demo's TLS emulators (Salesforce, SMTP) present."""
    return demo_tls_dir() / "ca.pem"


def demo_ca_if_local(
    host: str, port: int | None, endpoint: DemoEndpoint
) -> Path | None:
    """The demo CA when `host:port` is that demo emulator and the CA exists.

    Lets connectors left at their demo defaults trust the demo's emulators with
    no configuration, while a real service's address never picks it up.
    """
    if host not in (DEMO_HOST, "localhost") or port != endpoint.port:
        return None
    ca_file = demo_ca_file()
    return ca_file if ca_file.exists() else None
