"""Fixtures for the action services: commands in, results out, on the real broker.

`ActionHarness` runs a real `ActionService` (its consumer group on the real
broker, Redis for idempotency), produces `step_command` records to its topic and
reads the `step_result` records it answers with from `step-results`.
`HookServer` is a small HTTP server on loopback that records what it receives and
answers with what a test queues (statuses, Retry-After, delays).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from confluent_kafka import Consumer, Producer
from redis.asyncio import Redis

from services.actions.resources import Connectors, Resources, default_factories
from services.actions.service import ActionService
from services.actions.settings import ActionSettings, WebhookSettings
from signalflow.contracts import Codec
from signalflow.kafka.clients import make_producer
from signalflow.settings import Settings
from signalflow.topics import ActionType, Topics

CODEC = Codec.load()


def profile(
    key: str,
    *,
    kind: str = "PERSON",
    account_key: str = "acme",
    email: str | None = None,
    owner: str | None = None,
    past_owners: list[str] | None = None,
    fields: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A `profile` record."""
    return {
        "key": key,
        "kind": kind,
        "account_key": account_key,
        "updated_at": datetime(2024, 5, 1, tzinfo=UTC),
        "deleted": False,
        "email": email,
        "owner": owner,
        "past_owners": past_owners or [],
        "last_activity_at": None,
        "fields": dict(fields or {}),
    }


def enrollment(
    *,
    run_id: str = "run-1",
    mode: str = "LIVE",
    person: dict[str, Any] | None = None,
    account: dict[str, Any] | None = None,
    signals: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An `enrollment` record for Dana Reyes, VP Sales at Acme, after funding."""
    return {
        "run_id": run_id,
        "workflow_id": "wf-actions",
        "workflow_version": 1,
        "mode": mode,
        "command_id": None,
        "person_key": "dana",
        "account_key": "acme",
        "enrolled_at": datetime(2024, 5, 3, tzinfo=UTC),
        "person": person
        or profile(
            "dana",
            email="dana@acme.io",
            owner="sam@yourco.com",
            past_owners=["ali@yourco.com"],
            fields={"first_name": "Dana", "last_name": "Reyes", "title": "VP Sales"},
        ),
        "account": account
        or profile(
            "acme",
            kind="ACCOUNT",
            owner="kim@yourco.com",
            past_owners=["jo@yourco.com"],
            fields={"name": "Acme", "domain": "acme.io", "industry": "Software"},
        ),
        "signals": signals
        if signals is not None
        else [
            {
                "signal_id": "sig-1",
                "type": "funding",
                "scope": "COMPANY",
                "occurred_at": datetime(2024, 5, 2, tzinfo=UTC),
                "attributes": {"round": "Series B", "amount": "25000000"},
            }
        ],
        "explanation": [],
    }


def step_command(
    action_type: ActionType,
    params: Mapping[str, Any],
    *,
    run_id: str | None = None,
    step_id: str = "0",
    attempt: int = 1,
    mode: str = "LIVE",
    outputs: Mapping[str, str] | None = None,
    key: str | None = None,
    **enrollment_options: Any,
) -> dict[str, Any]:
    """A `step_command` record for one step of a fresh run."""
    run_id = run_id or f"run-{uuid.uuid4().hex[:12]}"
    return {
        "run_id": run_id,
        "step_id": step_id,
        "idempotency_key": key or f"{run_id}:{step_id}",
        "attempt": attempt,
        "max_attempts": 5,
        "action_type": str(action_type),
        "workflow_id": "wf-actions",
        "workflow_version": 1,
        "mode": mode,
        "params": json.dumps(params),
        "enrollment": enrollment(run_id=run_id, mode=mode, **enrollment_options),
        "outputs": dict(outputs or {}),
        "errors": [],
        "run_started_at": datetime(2024, 5, 3, tzinfo=UTC),
        "issued_at": datetime.now(UTC),
    }


class ResultReader:
    """Reads `step_result` records from the real topic, by idempotency key."""

    def __init__(self, settings: Settings, topics: Topics) -> None:
        self._consumer = Consumer(
            {
                **settings.kafka.librdkafka_config(),
                "group.id": f"results-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        self._consumer.subscribe([topics.name("step-results")])
        self.results: list[dict[str, Any]] = []

    async def wait_for(
        self, count: int, *, key: str | None = None, timeout_s: float = 30.0
    ) -> list[dict[str, Any]]:
        """Wait until `count` results (for `key`, when given) arrived; return them."""
        deadline = time.monotonic() + timeout_s
        while True:
            matching = [r for r in self.results if key in (None, r["idempotency_key"])]
            if len(matching) >= count:
                return matching
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"expected {count} results for {key!r} within {timeout_s}s, "
                    f"got {len(matching)}: {matching!r}"
                )
            await asyncio.to_thread(self._poll)

    def _poll(self) -> None:
        for message in self._consumer.consume(100, 0.2):
            if message.error() is None:
                self.results.append(CODEC.decode("step_result", message.value()))

    def close(self) -> None:
        self._consumer.close()


@dataclass
class ActionHarness:
    """One running action service and the means to feed and read it."""

    settings: Settings
    topics: Topics
    action_type: ActionType
    service: ActionService
    producer: Producer
    results: ResultReader
    sent: list[dict[str, Any]] = field(default_factory=list)

    def send(self, command: dict[str, Any], *, raw: bytes | None = None) -> None:
        """Produce one command (or raw bytes) to the action type's topic."""
        value = raw if raw is not None else CODEC.encode("step_command", command)
        self.producer.produce(
            self.topics.action(self.action_type), value, key=command["run_id"]
        )
        self.producer.flush(10)
        self.sent.append(command)

    async def run(
        self, command: dict[str, Any], *, timeout_s: float = 30.0
    ) -> dict[str, Any]:
        """Send one command and return the first result answering it."""
        before = len(self._answers(command))
        self.send(command)
        answers = await self.results.wait_for(
            before + 1, key=command["idempotency_key"], timeout_s=timeout_s
        )
        return answers[before]

    def _answers(self, command: dict[str, Any]) -> list[dict[str, Any]]:
        key = command["idempotency_key"]
        return [r for r in self.results.results if r["idempotency_key"] == key]


@pytest.fixture
def own_settings() -> ActionSettings:
    """Action settings with short waits, so tests finish quickly."""
    return ActionSettings(
        max_in_flight=16,
        partition_concurrency=4,
        claim_wait_s=10,
        revoke_drain_s=5,
    )


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client of the session's Redis."""
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def webhook_settings() -> WebhookSettings:
    return WebhookSettings(
        allowlist=["127.0.0.1"],
        secrets={"partner": "s3cr3t-signing-key"},  # type: ignore[dict-item]
    )


@pytest.fixture
def resources(
    settings: Settings,
    own_settings: ActionSettings,
    redis: Redis,
    webhook_settings: WebhookSettings,
) -> Resources:
    """Resources with no connectors; tests of vendor actions add theirs."""
    return Resources(
        settings=settings,
        own=own_settings,
        redis=redis,
        connectors=Connectors({}),
        webhook=webhook_settings,
    )


@pytest.fixture
async def harness_factory(
    settings: Settings, topics: Topics, own_settings: ActionSettings
) -> AsyncIterator[Any]:
    """Start an `ActionHarness` for an action type; stops everything afterwards."""
    started: list[ActionHarness] = []

    async def start(
        action_type: ActionType, resources: Resources, **options: Any
    ) -> ActionHarness:
        service = ActionService(
            settings, action_type, own=own_settings, resources=resources, **options
        )
        await service.start()
        harness = ActionHarness(
            settings,
            topics,
            action_type,
            service,
            make_producer(settings, linger_ms=0),
            ResultReader(settings, topics),
        )
        started.append(harness)
        return harness

    yield start
    for harness in started:
        await harness.service.stop()
        harness.results.close()


@dataclass
class Answer:
    """What the hook server answers one request with."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


class HookServer:
    """An HTTP server on loopback that records requests and answers as queued."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.queued: list[Answer] = []
        self.default = Answer(200, {"data": {"id": "hook-1", "score": 7}})
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        if server is None or not server.sockets:
            raise RuntimeError("the hook server did not bind")
        self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": body,
            }
        )
        answer = self.queued.pop(0) if self.queued else self.default
        if answer.delay_s:
            await asyncio.sleep(answer.delay_s)
        return web.json_response(
            answer.body, status=answer.status, headers=answer.headers
        )


@pytest.fixture
async def hook_server() -> AsyncIterator[HookServer]:
    server = HookServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def emulators(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Any]:
    """Start the named vendor emulators and point the connectors at them.

    `running = await emulators("salesforce", "slack")`; they stop after the test.
    """
    stack = contextlib.AsyncExitStack()

    from signalflow.emulators.suite import running_emulators

    async def start(*names: str) -> Any:
        running = await stack.enter_async_context(
            running_emulators(*names, tls_dir=tmp_path / "tls")
        )
        for name, value in running.connector_env().items():
            monkeypatch.setenv(name, value)
        return running

    async with stack:
        yield start


@pytest.fixture
def vendor_resources(
    settings: Settings,
    own_settings: ActionSettings,
    redis: Redis,
    webhook_settings: WebhookSettings,
) -> Resources:
    """Resources whose connectors are built from the environment, as in production."""
    return Resources(
        settings=settings,
        own=own_settings,
        redis=redis,
        connectors=Connectors(default_factories()),
        webhook=webhook_settings,
    )
