"""The control endpoints every emulator serves, used over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from signalflow.emulators.base import Fault
from signalflow.emulators.hubspot import HubSpotEmulator
from signalflow.emulators.server import EmulatorServer
from signalflow.emulators.slack import SlackEmulator
from signalflow.emulators.tls import ensure_tls_files

TOKEN = "xoxb-control-test"


@pytest.fixture
async def slack() -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(SlackEmulator(token=TOKEN)) as server:
        yield server


async def test_requests_are_recorded_with_credentials_redacted(
    slack: EmulatorServer,
) -> None:
    async with httpx.AsyncClient(base_url=slack.origin) as client:
        await client.post(
            "/api/chat.postMessage",
            json={"channel": "#sales", "text": "hello"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        recorded = (await client.get("/_emulator/requests")).json()["requests"]
        await client.delete("/_emulator/requests")
        after = (await client.get("/_emulator/requests")).json()["requests"]

    [request] = recorded
    assert request["path"] == "/api/chat.postMessage"
    assert request["headers"]["authorization"] == "<redacted>"
    assert TOKEN not in str(recorded)
    assert after == []


async def test_faults_armed_over_http_fail_the_next_matching_requests(
    slack: EmulatorServer,
) -> None:
    fault = {
        "kind": "rate_limit",
        "path": "/api/auth.*",
        "count": 2,
        "retry_after_s": 5,
    }
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=slack.origin, headers=headers) as client:
        armed = await client.post("/_emulator/faults", json=fault)
        statuses = [(await client.post("/api/auth.test")).status_code for _ in range(3)]
        limited = await client.post("/api/chat.postMessage", json={"text": "x"})

    assert armed.status_code == 201
    assert statuses == [429, 429, 200]
    assert limited.status_code == 200  # another path is not affected


async def test_rate_limit_answers_in_the_vendor_shape(slack: EmulatorServer) -> None:
    slack.emulator.inject(Fault(kind="rate_limit", retry_after_s=7))
    async with httpx.AsyncClient(base_url=slack.origin) as client:
        answer = await client.post("/api/auth.test")

    assert answer.headers["retry-after"] == "7"
    assert answer.json() == {"ok": False, "error": "ratelimited"}


async def test_a_bad_fault_is_refused(slack: EmulatorServer) -> None:
    async with httpx.AsyncClient(base_url=slack.origin) as client:
        unknown_kind = await client.post("/_emulator/faults", json={"kind": "explode"})
        unknown_field = await client.post(
            "/_emulator/faults", json={"kind": "hang", "seconds": 3}
        )

    assert unknown_kind.status_code == 422 and "explode" in unknown_kind.text
    assert unknown_field.status_code == 422 and "seconds" in unknown_field.text
    assert slack.emulator.faults == []


async def test_a_wrong_token_gets_the_vendor_answer() -> None:
    async with (
        EmulatorServer(HubSpotEmulator(token="right")) as hubspot,
        httpx.AsyncClient(base_url=hubspot.origin) as client,
    ):
        answer = await client.get(
            "/crm/v3/owners/", headers={"Authorization": "Bearer wrong"}
        )

    assert answer.status_code == 401
    assert answer.json()["category"] == "INVALID_AUTHENTICATION"


async def test_a_server_refuses_to_start_twice(slack: EmulatorServer) -> None:
    with pytest.raises(RuntimeError, match="already started"):
        await slack.start()


def test_tls_files_are_reused_while_valid(tmp_path: Path) -> None:
    first = ensure_tls_files(tmp_path)
    ca = first.ca_file.read_bytes()

    second = ensure_tls_files(tmp_path)

    assert second == first and second.ca_file.read_bytes() == ca
    assert first.key_file.stat().st_mode & 0o077 == 0
