"""An SMTP server (aiosmtpd) that keeps every message it accepts, parsed.

`SmtpServer` runs the SMTP listener in the caller's event loop with STARTTLS
(required before AUTH), implicit TLS, or no TLS, and AUTH PLAIN/LOGIN against
one username and password. Beside it an HTTP control app serves
`GET /_emulator/requests` (the messages received) and `/_emulator/faults`.

Faults apply at DATA: a fault's `path` is a glob matched against each
recipient. `rate_limit` and `server_error` answer 451 (transient),
`bad_request` answers 554 (permanent), `hang` holds the reply for `hang_s`.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import ssl
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from signalflow.emulators import demo
from signalflow.emulators.base import Emulator, Fault
from signalflow.emulators.server import EmulatorServer, bind_loopback
from signalflow.emulators.tls import TlsFiles

logger = logging.getLogger(__name__)

SmtpTlsMode = Literal["starttls", "implicit", "none"]
FAULT_REPLIES = {
    "rate_limit": "451 4.7.1 Too many messages, try again later",
    "server_error": "451 4.3.0 Local error in processing",
    "bad_request": "554 5.6.0 Message rejected",
}


@dataclass(frozen=True)
class ReceivedMessage:
    """One accepted message: the envelope, the parsed parts and the raw bytes."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    subject: str
    sender: str
    to: str
    message_id: str
    text: str | None
    html: str | None
    authenticated_as: str | None
    raw: bytes = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view without the raw bytes."""
        view = asdict(self)
        view.pop("raw")
        view["rcpt_tos"] = list(self.rcpt_tos)
        return view


class SmtpEmulator(Emulator):
    """The SMTP handler and its control app; `messages` holds what was accepted.

    With `username` set, AUTH is required and must match `password`.
    """

    name: ClassVar[str] = "smtp"

    def __init__(
        self, *, username: str | None = None, password: str | None = None
    ) -> None:
        super().__init__(token=None)
        self.username = username
        self.password = password
        self.messages: list[ReceivedMessage] = []

    # -- HTTP control ----------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return []

    async def _control_requests(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.messages.clear()
            return Response(status_code=204)
        return JSONResponse({"requests": [m.to_json() for m in self.messages]})

    def reset(self) -> None:
        """Forget received messages and disarm every fault."""
        super().reset()
        self.messages.clear()

    # -- aiosmtpd hooks ------------------------------------------------------------

    def authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        """aiosmtpd's authenticator: the configured username and password only."""
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        if login != self.username or password != self.password:
            # handled=False makes aiosmtpd answer 535 itself.
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=login)

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        """Accept the message (recording it) or answer with an armed fault."""
        fault = self._fault_for(envelope.rcpt_tos)
        if fault is not None and fault.kind == "hang":
            await self._hold(fault)
        elif fault is not None:
            logger.info("smtp: injecting %s for %s", fault.kind, envelope.rcpt_tos)
            return FAULT_REPLIES[fault.kind]
        received = _parse(envelope, session)
        self.messages.append(received)
        return f"250 2.0.0 OK {received.message_id}"

    def _fault_for(self, recipients: list[str]) -> Fault | None:
        for recipient in recipients:
            fault = self._take_fault("DATA", recipient)
            if fault is not None:
                return fault
        return None


def _parse(envelope: Envelope, session: Session) -> ReceivedMessage:
    raw = envelope.original_content or b""
    if not raw and isinstance(envelope.content, bytes):
        raw = envelope.content
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    text = parsed.get_body(preferencelist=("plain",))
    html = parsed.get_body(preferencelist=("html",))
    authenticated = session.auth_data if isinstance(session.auth_data, str) else None
    return ReceivedMessage(
        mail_from=envelope.mail_from or "",
        rcpt_tos=tuple(envelope.rcpt_tos),
        subject=str(parsed.get("Subject", "")),
        sender=str(parsed.get("From", "")),
        to=str(parsed.get("To", "")),
        message_id=str(parsed.get("Message-ID", "")),
        text=text.get_content() if text is not None else None,
        html=html.get_content() if html is not None else None,
        authenticated_as=authenticated,
        raw=raw,
    )


class SmtpServer:
    """Serves an `SmtpEmulator` over SMTP, plus its HTTP control app.

    `start()` returns once both listen; `stop()` closes the listener, lets
    held replies go and stops the control app. Use as `async with`.
    """

    def __init__(
        self,
        emulator: SmtpEmulator,
        *,
        host: str = demo.DEMO_HOST,
        port: int = 0,
        control_port: int = 0,
        tls: TlsFiles | None = None,
        tls_mode: SmtpTlsMode = "starttls",
    ) -> None:
        if tls_mode != "none" and tls is None:
            raise ValueError(f"expected TLS files for tls_mode {tls_mode!r}")
        self.emulator = emulator
        self.host = host
        self.tls = tls
        self.tls_mode = tls_mode
        self._sock = bind_loopback(host, port)
        self.port: int = self._sock.getsockname()[1]
        self.control = EmulatorServer(emulator, host=host, port=control_port)
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        """`smtp://` (or `smtps://` for implicit TLS) with host and port."""
        scheme = "smtps" if self.tls_mode == "implicit" else "smtp"
        return f"{scheme}://{self.host}:{self.port}"

    async def __aenter__(self) -> SmtpServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen for SMTP and start the control app; refuses to start twice."""
        if self._server is not None:
            raise RuntimeError("the smtp emulator is already started")
        loop = asyncio.get_running_loop()
        implicit = self._server_context() if self.tls_mode == "implicit" else None
        self._server = await loop.create_server(
            self._protocol, sock=self._sock, ssl=implicit
        )
        await self.control.start()
        logger.info("smtp emulator listening on %s (%s)", self.url, self.tls_mode)

    def _protocol(self) -> SMTP:
        starttls = self._server_context() if self.tls_mode == "starttls" else None
        with warnings.catch_warnings():
            # aiosmtpd warns about AUTH without STARTTLS even over implicit TLS.
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            return self._smtp(starttls)

    def _server_context(self) -> ssl.SSLContext:
        if self.tls is None:
            raise RuntimeError(f"tls_mode {self.tls_mode!r} needs TLS files")
        return self.tls.server_context()

    def _smtp(self, starttls: ssl.SSLContext | None) -> SMTP:
        return SMTP(
            self.emulator,
            hostname="localhost",
            tls_context=starttls,
            require_starttls=starttls is not None,
            auth_required=self.emulator.username is not None,
            # With implicit TLS the whole session is encrypted, but aiosmtpd only
            # counts STARTTLS as TLS: require it for AUTH in that mode alone.
            auth_require_tls=self.tls_mode == "starttls",
            authenticator=self.emulator.authenticate,
            loop=asyncio.get_running_loop(),
        )

    async def stop(self) -> None:
        """Stop listening and stop the control app."""
        self.emulator.release_hung()
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        self._sock.close()
        await self.control.stop()

    def connector_env(self) -> dict[str, str]:
        """Environment variables pointing the SMTP connector at this server."""
        env = {
            "SIGNALFLOW_SMTP_HOST": self.host,
            "SIGNALFLOW_SMTP_PORT": str(self.port),
            "SIGNALFLOW_SMTP_TLS": self.tls_mode,
        }
        if self.emulator.username is not None:
            env["SIGNALFLOW_SMTP_USERNAME"] = self.emulator.username
            env["SIGNALFLOW_SMTP_PASSWORD"] = self.emulator.password or ""
        if self.tls is not None and self.tls_mode != "none":
            env["SIGNALFLOW_SMTP_CA_FILE"] = str(self.tls.ca_file)
        return env
