"""The SMTP connector with aiosmtplib, against the aiosmtpd emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from services.actions.connectors.smtp import OutgoingEmail, SmtpConnector, SmtpSettings
from services.actions.errors import PermanentError, RetryableError
from signalflow.emulators.base import Fault
from signalflow.emulators.smtp import SmtpEmulator, SmtpServer, SmtpTlsMode
from signalflow.emulators.tls import TlsFiles

USER = "mailer"
PASSWORD = "s3cret-smtp-password"
EMAIL = OutgoingEmail(
    to=["sam.seller@example.com"],
    subject="Ada Lovelace joined Acme Robotics",
    text="Ada is now CTO at Acme Robotics.",
    html="<p><b>Ada</b> is now CTO at Acme Robotics.</p>",
)


def settings_for(
    server: SmtpServer, tls_files: TlsFiles, **overrides: object
) -> SmtpSettings:
    values: dict[str, object] = {
        "host": server.host,
        "port": server.port,
        "tls": server.tls_mode,
        "username": USER,
        "password": SecretStr(PASSWORD),
        "ca_file": tls_files.ca_file,
        "timeout_s": 0.5,
    }
    values.update(overrides)
    return SmtpSettings.model_validate(values)


@pytest.fixture(params=["starttls", "implicit"])
async def mail_server(
    request: pytest.FixtureRequest, tls_files: TlsFiles
) -> AsyncIterator[SmtpServer]:
    mode: SmtpTlsMode = request.param
    emulator = SmtpEmulator(username=USER, password=PASSWORD)
    async with SmtpServer(emulator, tls=tls_files, tls_mode=mode) as server:
        yield server


@pytest.fixture
async def smtp(
    mail_server: SmtpServer, tls_files: TlsFiles
) -> AsyncIterator[SmtpConnector]:
    async with SmtpConnector(settings_for(mail_server, tls_files)) as connector:
        yield connector


async def test_a_multipart_message_arrives_over_tls_with_auth(
    smtp: SmtpConnector, mail_server: SmtpServer
) -> None:
    message_id = await smtp.send(EMAIL)

    [received] = mail_server.emulator.messages
    assert received.message_id == message_id
    assert received.rcpt_tos == ("sam.seller@example.com",)
    assert received.subject == EMAIL.subject
    assert received.text is not None and received.text.strip() == EMAIL.text
    assert received.html is not None and "<b>Ada</b>" in received.html
    assert received.authenticated_as == USER


async def test_a_wrong_password_is_permanent_and_not_quoted(
    mail_server: SmtpServer, tls_files: TlsFiles
) -> None:
    settings = settings_for(mail_server, tls_files, password=SecretStr("wrong-pass"))
    async with SmtpConnector(settings) as connector:
        with pytest.raises(PermanentError) as caught:
            await connector.send(EMAIL)

    assert caught.value.status == 535
    assert "wrong-pass" not in repr(caught.value)
    assert not mail_server.emulator.messages


async def test_an_untrusted_certificate_fails(
    mail_server: SmtpServer, tls_files: TlsFiles
) -> None:
    settings = settings_for(mail_server, tls_files, ca_file=None)
    async with SmtpConnector(settings) as connector:
        with pytest.raises(RetryableError):
            await connector.send(EMAIL)


async def test_a_transient_reply_is_retryable(
    smtp: SmtpConnector, mail_server: SmtpServer
) -> None:
    mail_server.emulator.inject(Fault(kind="server_error", path="sam.*"))

    with pytest.raises(RetryableError) as caught:
        await smtp.send(EMAIL)

    assert caught.value.status == 451


async def test_a_permanent_reply_is_permanent(
    smtp: SmtpConnector, mail_server: SmtpServer
) -> None:
    mail_server.emulator.inject(Fault(kind="bad_request"))

    with pytest.raises(PermanentError) as caught:
        await smtp.send(EMAIL)

    assert caught.value.status == 554


async def test_a_hung_server_is_retryable(
    smtp: SmtpConnector, mail_server: SmtpServer
) -> None:
    mail_server.emulator.inject(Fault(kind="hang", hang_s=5))

    with pytest.raises(RetryableError, match="did not answer"):
        await smtp.send(EMAIL)


def test_header_injection_is_refused() -> None:
    connector = SmtpConnector(SmtpSettings())

    with pytest.raises(PermanentError, match="single-line Subject"):
        connector.build_message(
            OutgoingEmail(
                to=["a@b.example"], subject="hi\r\nBcc: x@y.example", text="x"
            )
        )
