"""E-mail through SMTP with aiosmtplib: multipart text and HTML, TLS and AUTH.

`tls` is `starttls` (port 587 style: connect in clear, upgrade, then log in),
`implicit` (port 465 style: TLS from the first byte) or `none` (only for a
relay on the same host). `ca_file` makes the connector trust a private CA, such
as the local emulator's. Each `send` opens its own connection: e-mail volume
per process is low and a fresh session avoids stale-connection failures.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Literal

import aiosmtplib
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

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

VENDOR = "smtp"


class SmtpSettings(ConnectorSettings):
    """The mail server and how to reach it (`SIGNALFLOW_SMTP_*`)."""

    model_config = SettingsConfigDict(env_prefix="SIGNALFLOW_SMTP_", extra="ignore")

    host: str = demo.DEMO_HOST
    port: int = Field(default=demo.SMTP.port, ge=1, le=65535)
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    username: str | None = demo.SMTP_USERNAME
    password: SecretStr | None = SecretStr(demo.SMTP.token)
    ca_file: Path | None = Field(
        default=None,
        description="PEM CA bundle to verify the server with instead of the system's; "
        "left unset for the local demo emulator, its CA is used.",
    )
    sender: str = Field(
        default="signalflow <notifications@signalflow.example>",
        description="The From address when a message names none.",
    )
    max_concurrency: int = Field(default=2, ge=1)

    @model_validator(mode="after")
    def _trust_the_demo_emulator(self) -> SmtpSettings:
        if self.ca_file is None and self.tls != "none":
            self.ca_file = demo.demo_ca_if_local(self.host, self.port, demo.SMTP)
        return self


@dataclass(frozen=True)
class OutgoingEmail:
    """One message to send: plain text always, HTML optionally."""

    to: Sequence[str]
    subject: str
    text: str
    html: str | None = None
    sender: str | None = None
    reply_to: str | None = None
    cc: Sequence[str] = ()
    headers: dict[str, str] = field(default_factory=dict)


class SmtpConnector:
    """Sends e-mail through one SMTP server; use as `async with` or start/close."""

    def __init__(self, settings: SmtpSettings | None = None) -> None:
        self.settings = settings or SmtpSettings()
        self.limiter = CallLimiter(
            VENDOR,
            max_concurrency=self.settings.max_concurrency,
            rate_per_s=self.settings.rate_per_s,
        )
        self._tls_context: ssl.SSLContext | None = None
        self._started = False

    async def __aenter__(self) -> SmtpConnector:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def start(self) -> None:
        """Prepare the TLS context; raises RuntimeError when already started."""
        if self._started:
            raise RuntimeError("the SMTP connector is already started")
        if self.settings.tls != "none":
            cafile = str(self.settings.ca_file) if self.settings.ca_file else None
            self._tls_context = ssl.create_default_context(cafile=cafile)
        self._started = True

    async def close(self) -> None:
        """Nothing stays open between sends; marks the connector stopped."""
        self._started = False

    def build_message(self, outgoing: OutgoingEmail) -> EmailMessage:
        """The MIME message: text/plain, plus a text/html alternative if given.

        Raises PermanentError when there is no recipient or a header value
        contains a line break (which would let a value inject headers).
        """
        if not outgoing.to:
            raise PermanentError(
                "expected at least one recipient, got none", vendor=VENDOR
            )
        message = EmailMessage()
        values = {
            "From": outgoing.sender or self.settings.sender,
            "To": ", ".join(outgoing.to),
            "Subject": outgoing.subject,
            **({"Cc": ", ".join(outgoing.cc)} if outgoing.cc else {}),
            **({"Reply-To": outgoing.reply_to} if outgoing.reply_to else {}),
            **outgoing.headers,
        }
        for name, value in values.items():
            if "\n" in value or "\r" in value:
                raise PermanentError(
                    f"expected a single-line {name} header, got {value!r}",
                    vendor=VENDOR,
                )
            message[name] = value
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = make_msgid(domain=_domain_of(message["From"]))
        message.set_content(outgoing.text)
        if outgoing.html is not None:
            message.add_alternative(outgoing.html, subtype="html")
        return message

    async def send(self, outgoing: OutgoingEmail) -> str:
        """Send one message and return its Message-ID.

        Raises RetryableError for timeouts, lost connections and 4xx replies,
        PermanentError for 5xx replies (refused recipients, failed AUTH).
        """
        if not self._started:
            raise RuntimeError("the SMTP connector is not started")
        message = self.build_message(outgoing)
        async with self.limiter.slot():
            await self._deliver(message)
        logger.info(
            "sent e-mail %s to %d recipient(s)", message["Message-ID"], len(outgoing.to)
        )
        return str(message["Message-ID"])

    async def _deliver(self, message: EmailMessage) -> None:
        settings = self.settings
        password = settings.password.get_secret_value() if settings.password else None
        try:
            await aiosmtplib.send(
                message,
                hostname=settings.host,
                port=settings.port,
                username=settings.username if password is not None else None,
                password=password,
                use_tls=settings.tls == "implicit",
                start_tls=settings.tls == "starttls",
                tls_context=self._tls_context,
                timeout=settings.timeout_s,
            )
        except aiosmtplib.SMTPException as exc:
            raise self._translate(exc) from exc
        except OSError as exc:
            raise RetryableError(
                f"could not reach the SMTP server {settings.host}:{settings.port}: "
                f"{type(exc).__name__}",
                vendor=VENDOR,
            ) from exc

    def _translate(self, exc: aiosmtplib.SMTPException) -> ActionError:
        where = f"{self.settings.host}:{self.settings.port}"
        if isinstance(exc, aiosmtplib.SMTPTimeoutError):
            return RetryableError(
                f"the SMTP server {where} did not answer within "
                f"{self.settings.timeout_s}s",
                vendor=VENDOR,
            )
        if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
            codes = [r.code for r in exc.recipients]
            detail = "; ".join(
                f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients
            )
            return self._by_code(
                min(codes, default=550), f"recipients refused: {detail}"
            )
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            return self._by_code(exc.code, f"{exc.code} {exc.message}")
        if isinstance(
            exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError
        ):
            return RetryableError(
                f"lost the SMTP server {where}: {self._scrub(str(exc))}", vendor=VENDOR
            )
        return PermanentError(
            f"SMTP with {where} failed: {self._scrub(str(exc))}", vendor=VENDOR
        )

    def _by_code(self, code: int, detail: str) -> ActionError:
        message = f"the SMTP server answered {self._scrub(detail)}"
        if 400 <= code < 500:
            return RetryableError(message, vendor=VENDOR, status=code)
        return PermanentError(message, vendor=VENDOR, status=code)

    def _scrub(self, text: str) -> str:
        password = self.settings.password
        return scrub_secrets(text, [password.get_secret_value() if password else None])


def _domain_of(address: str) -> str:
    """The domain of an address such as `Name <user@example.com>`."""
    mailbox = address.rsplit("<", 1)[-1].rstrip(">").strip()
    _, _, domain = mailbox.rpartition("@")
    return domain or "signalflow.local"
