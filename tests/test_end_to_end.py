"""The whole path, each service its own process: api, matcher, dispatcher with its
relays, the Slack and webhook action services and metrics, on the real broker and
Redis, with Slack's local stand-in and a webhook receiver on loopback.

An audience and a realtime workflow are saved and activated through the api,
profiles and signals are published through the api, and exactly the matching
prospect goes through every step: a Slack message, a delay, a webhook. The run is
counted by the metrics service and shown by the api.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from signalflow.emulators.slack import SlackEmulator
from signalflow.emulators.suite import RunningEmulators, running_emulators
from signalflow.local.ports import free_port_block
from signalflow.local.processes import ProcessRecord, spawn, stop_all
from signalflow.settings import Settings
from signalflow.topics import Topics

pytestmark = pytest.mark.slow

TOKEN = "end-to-end-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
START_TIMEOUT_S = 180.0


@dataclass
class Stack:
    api: str
    metrics: str
    records: list[ProcessRecord]


@pytest.fixture
async def emulators(tmp_path: Path) -> AsyncIterator[RunningEmulators]:
    async with running_emulators("slack", tls_dir=tmp_path / "tls") as running:
        yield running


@pytest.fixture
async def webhook_calls() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook receiver on loopback; yields its URL and what it received."""
    calls: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        calls.append({"at": datetime.now(UTC), "body": await request.json()})
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port_block(1)
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/hook", calls
    await runner.cleanup()


@pytest.fixture
def stack(
    settings: Settings,
    topics: Topics,
    emulators: RunningEmulators,
    tmp_path: Path,
) -> Iterator[Stack]:
    api, metrics, matcher, dispatcher = (free_port_block(1) for _ in range(4))
    actions_base = free_port_block(9)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "REDIS_URL": settings.redis.url,
        "SIGNALFLOW_TOPIC_PREFIX": settings.topic_prefix,
        "SIGNALFLOW_DEFAULT_PARTITIONS": str(settings.default_partitions),
        "SIGNALFLOW_API_TOKENS": TOKEN,
        "SIGNALFLOW_API_PORT": str(api),
        "SIGNALFLOW_METRICS_PORT": str(metrics),
        "SIGNALFLOW_MATCHER_PORT": str(matcher),
        "SIGNALFLOW_MATCHER_DATA_DIR": str(tmp_path / "matcher"),
        "SIGNALFLOW_DISPATCHER_PORT": str(dispatcher),
        "SIGNALFLOW_ACTIONS_BASE_PORT": str(actions_base),
        "SIGNALFLOW_WEBHOOK_ALLOWLIST": "127.0.0.1",
        **emulators.connector_env(),
    }
    commands = {
        "api": ["run", "api"],
        "metrics": ["run", "metrics"],
        "matcher": ["run", "matcher"],
        "dispatcher": ["run", "dispatcher"],
        "slack": ["run", "action", "--type", "slack"],
        "webhook": ["run", "action", "--type", "webhook"],
    }
    health = [api, metrics, matcher, dispatcher, actions_base + 2, actions_base + 5]
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        records = [
            spawn(
                [sys.executable, "-m", "signalflow", *argv],
                output=tmp_path / f"{name}.log",
            )
            for name, argv in commands.items()
        ]
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        _wait_healthy([f"http://127.0.0.1:{port}/health" for port in health], records)
        yield Stack(f"http://127.0.0.1:{api}", f"http://127.0.0.1:{metrics}", records)
    finally:
        stop_all(records, grace_s=30)


def _wait_healthy(urls: list[str], records: list[ProcessRecord]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    pending = list(urls)
    with httpx.Client(timeout=1.0) as client:
        while pending:
            assert all(record.is_alive() for record in records), "a service exited"
            assert time.monotonic() < deadline, f"never healthy: {pending}"
            pending = [url for url in pending if not _healthy(client, url)]
            time.sleep(0.5)


def _healthy(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).status_code == 200
    except httpx.HTTPError:
        return False


AUDIENCE = {
    "name": "Funded accounts, buying committee with email",
    "filter": {
        "kind": "all",
        "of": [
            {"kind": "company_signal", "types": ["funding"], "within_days": 30},
            {"kind": "person_signal", "types": ["multi_thread"]},
            {"kind": "has_email", "value": True},
        ],
    },
}


def workflow(audience_id: str, hook_url: str) -> dict[str, Any]:
    return {
        "name": "Funding alert",
        "audience_id": audience_id,
        "schedule": {"kind": "realtime"},
        "timing": "future_only",
        "steps": [
            {
                "kind": "slack",
                "name": "Tell the team",
                "params": {
                    "recipients": [{"kind": "slack_channel", "channel": "#signals"}],
                    "message": ":rocket: *$Company Name* raised money; "
                    "$Full Name ($Current Title) is on the buying committee.",
                },
            },
            {
                "kind": "delay",
                "name": "Give routing a moment",
                "params": {"seconds": 2},
            },
            {
                "kind": "webhook",
                "name": "Hand over",
                "params": {
                    "url": hook_url,
                    "payload": '{"email": "$Email", "company": "$Company Name"}',
                },
            },
        ],
    }


def people(now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """An account with two committee members; only one has an email."""
    at = now.isoformat()
    profiles = [
        {
            "key": "acct-e2e",
            "kind": "ACCOUNT",
            "account_key": "acct-e2e",
            "updated_at": at,
            "fields": {"name": "Acme <Rockets> & Co", "domain": "acme.example"},
        },
        {
            "key": "p-ada",
            "kind": "PERSON",
            "account_key": "acct-e2e",
            "updated_at": at,
            "email": "ada@acme.example",
            "fields": {"first_name": "Ada", "last_name": "Lovelace", "title": "CTO"},
        },
        {
            "key": "p-bob",
            "kind": "PERSON",
            "account_key": "acct-e2e",
            "updated_at": at,
            "fields": {"first_name": "Bob", "last_name": "Noemail", "title": "CFO"},
        },
    ]
    signals = [
        {
            "signal_id": "e2e-funding",
            "type": "funding",
            "scope": "COMPANY",
            "account_key": "acct-e2e",
            "occurred_at": at,
            "source": "e2e",
            "attributes": {"round": "Series B"},
        },
    ] + [
        {
            "signal_id": f"e2e-thread-{person}",
            "type": "multi_thread",
            "scope": "PERSON",
            "account_key": "acct-e2e",
            "person_key": person,
            "occurred_at": at,
            "source": "e2e",
            "attributes": {},
        }
        for person in ("p-ada", "p-bob")
    ]
    return profiles, signals


async def eventually(probe: Any, *, timeout_s: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = await probe()
        if result:
            return result
        assert time.monotonic() < deadline, "the expected outcome never came"
        await asyncio.sleep(0.5)


async def test_a_matching_prospect_runs_every_step_once_and_is_counted(
    stack: Stack,
    emulators: RunningEmulators,
    webhook_calls: tuple[str, list[dict[str, Any]]],
) -> None:
    hook_url, calls = webhook_calls
    slack = emulators.server("slack").emulator
    assert isinstance(slack, SlackEmulator)
    async with httpx.AsyncClient(base_url=stack.api, headers=AUTH, timeout=30.0) as api:
        audience = (await api.post("/audiences", json=AUDIENCE)).json()
        created = await api.post("/workflows", json=workflow(audience["id"], hook_url))
        assert created.status_code == 201, created.text
        workflow_id = created.json()["id"]
        activated = await api.post(
            f"/workflows/{workflow_id}/activate",
            json={"execution_timing": "future_only"},
        )
        assert activated.status_code == 200, activated.text

        profiles, signals = people(datetime.now(UTC) - timedelta(minutes=1))
        accepted = (await api.post("/profiles", json=profiles)).json()
        assert accepted["accepted"] == len(profiles), accepted
        await asyncio.sleep(2)  # profiles first, as an integrator's sync would
        accepted = (await api.post("/signals", json=signals)).json()
        assert accepted["accepted"] == len(signals), accepted

        async def run_counted() -> dict[str, Any] | None:
            response = await api.get(f"/workflows/{workflow_id}/metrics")
            body: dict[str, Any] = response.json()
            return body if body["totals"].get("done") == 1 else None

        figures = await eventually(run_counted)

    messages = slack.messages_in("C0SIGNALS")
    assert len(messages) == 1
    assert "Ada Lovelace (CTO)" in messages[0].text
    assert "Acme &lt;Rockets&gt; &amp; Co" in messages[0].text
    assert [call["body"] for call in calls] == [
        {"email": "ada@acme.example", "company": "Acme <Rockets> & Co"}
    ]
    assert figures["totals"] == {"enrolled": 1, "done": 1, "ok": 1}
    assert figures["steps"] == {"0": {"ok": 1}, "1": {"ok": 1}, "2": {"ok": 1}}
