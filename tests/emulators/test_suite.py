"""Every emulator at once, and every connector configured only by connector_env."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from services.actions.connectors.crm import CrmConnector
from services.actions.connectors.hubspot import HubSpotConnector
from services.actions.connectors.openai import OpenAIConnector
from services.actions.connectors.outreach import OutreachConnector
from services.actions.connectors.salesforce import SalesforceConnector
from services.actions.connectors.salesloft import SalesloftConnector
from services.actions.connectors.sequencing import EnrollmentRequest
from services.actions.connectors.slack import SlackConnector
from services.actions.connectors.smtp import OutgoingEmail, SmtpConnector
from signalflow.emulators.suite import EMULATOR_NAMES, running_emulators


async def test_connectors_reach_every_emulator_from_the_environment_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_emulators(tls_dir=tmp_path) as running:
        for key, value in running.connector_env().items():
            monkeypatch.setenv(key, value)

        crms: list[CrmConnector] = []
        async with SalesforceConnector() as salesforce, HubSpotConnector() as hubspot:
            crms += [salesforce, hubspot]
            for crm in crms:
                assert (
                    await crm.find_user_by_email("sam.seller@example.com") is not None
                )
        async with SlackConnector() as slack:
            assert (await slack.auth_test()).team_id
        for platform in (OutreachConnector(), SalesloftConnector()):
            async with platform:
                outcome = await platform.add_to_sequence(
                    EnrollmentRequest(email="ada@acme.example", sequence="1")
                    if isinstance(platform, OutreachConnector)
                    else EnrollmentRequest(
                        email="ada@acme.example", sequence="New hire welcome"
                    )
                )
                assert outcome.person_created
        async with OpenAIConnector() as openai:
            assert await openai.complete([{"role": "user", "content": "Company: Acme"}])
        async with SmtpConnector() as smtp:
            await smtp.send(OutgoingEmail(to=["a@b.example"], subject="s", text="t"))

        assert len(running.smtp_server().emulator.messages) == 1
        assert set(running.http) | {"smtp"} == set(EMULATOR_NAMES)


async def test_unknown_emulator_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="zendesk"):
        async with running_emulators("slack", "zendesk", tls_dir=tmp_path):
            pass


def test_serve_prints_urls_and_stops_on_sigterm(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-c",
        "from signalflow.emulators.cli import emulators_app; emulators_app()",
        "serve",
        "--free-ports",
        "--only",
        "slack",
        "--only",
        "smtp",
        "--tls-dir",
        str(tmp_path),
    ]
    env = {**os.environ, "COLUMNS": "200"}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as process:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "SIGNALFLOW_SMTP_TLS=" in line:
                break
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=20)

    output = "".join(lines) + rest
    assert process.returncode == 0, output
    assert "SIGNALFLOW_SLACK_BASE_URL=http://127.0.0.1:" in output
    assert "stopping the emulators" in output
