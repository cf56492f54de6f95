"""The metrics service counts each event once, keeps modes apart, and serves figures."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer
from redis.asyncio import Redis

from services.metrics.service import MetricsService
from services.metrics.store import Increment, MetricsStore
from signalflow.contracts import Codec
from signalflow.service import HealthServer
from signalflow.settings import Settings
from signalflow.topics import Topics

NOW = datetime(2026, 12, 3, 15, 30, tzinfo=UTC)
CODEC = Codec.load()


def profile(key: str) -> dict[str, Any]:
    return {
        "key": key,
        "kind": "PERSON",
        "account_key": "acct-1",
        "updated_at": NOW,
        "deleted": False,
        "email": f"{key}@example.com",
        "owner": "rep@example.com",
        "past_owners": [],
        "last_activity_at": None,
        "fields": {"title": "VP Sales"},
    }


def enrollment(run_id: str, *, mode: str = "LIVE") -> dict[str, Any]:
    return {
        "run_id": run_id,
        "workflow_id": "wf-1",
        "workflow_version": 1,
        "mode": mode,
        "command_id": None,
        "person_key": f"p-{run_id}",
        "account_key": "acct-1",
        "enrolled_at": NOW,
        "person": profile(f"p-{run_id}"),
        "account": None,
        "signals": [],
        "explanation": [],
    }


def run_end(run_id: str, status: str, *, mode: str = "LIVE") -> dict[str, Any]:
    return {
        "run_id": run_id,
        "workflow_id": "wf-1",
        "workflow_version": 1,
        "mode": mode,
        "status": status,
        "failed_step": "1" if status == "ERROR" else None,
        "error": "CRM said 400: bad email" if status == "ERROR" else None,
        "person_key": f"p-{run_id}",
        "account_key": "acct-1",
        "started_at": NOW,
        "ended_at": NOW + timedelta(seconds=3),
        "steps_ok": 1,
        "steps_failed": 1 if status == "ERROR" else 0,
    }


def step_result(run_id: str, step_id: str, status: str) -> dict[str, Any]:
    command = {
        "run_id": run_id,
        "step_id": step_id,
        "idempotency_key": f"{run_id}/{step_id}",
        "attempt": 1,
        "max_attempts": 3,
        "action_type": "slack",
        "workflow_id": "wf-1",
        "workflow_version": 1,
        "mode": "LIVE",
        "params": "{}",
        "enrollment": enrollment(run_id),
        "outputs": {},
        "errors": [],
        "run_started_at": NOW,
        "issued_at": NOW,
    }
    return {
        "run_id": run_id,
        "step_id": step_id,
        "idempotency_key": f"{run_id}/{step_id}",
        "attempt": 1,
        "status": status,
        "retryable": False,
        "retry_after_ms": None,
        "error": None,
        "outputs": {},
        "finished_at": NOW,
        "command": CODEC.encode("step_command", command),
    }


def matcher_status(partition: int, pending: int) -> dict[str, Any]:
    return {
        "workflow_id": "wf-1",
        "partition": partition,
        "reported_at": NOW,
        "pending": pending,
        "held_by_account_cap": 1,
        "held_by_rep_cap": 0,
        "expired": 0,
        "last_run_at": NOW - timedelta(hours=1),
        "last_run_enrolled": 2,
        "preview": None,
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_an_event_is_counted_once_however_often_it_is_applied(
    redis: Redis, settings: Settings
) -> None:
    store = MetricsStore(redis, topic_prefix=settings.topic_prefix)
    key = store.workflow_key("wf-1", "LIVE", "totals")
    increment = Increment(event_id="run:r1", fields=[(key, "done"), (key, "ok")])

    first = await store.apply([increment, increment])
    second = await store.apply([increment])

    assert (first, second) == (1, 0)
    assert await redis.hgetall(key) == {b"done": b"1", b"ok": b"1"}


@pytest.fixture
async def metrics_url(settings: Settings, topics: Topics) -> AsyncIterator[str]:
    service = MetricsService(settings)
    port = free_port()
    health = HealthServer(service, host="127.0.0.1", port=port)
    await health.start()
    async with service:
        yield f"http://127.0.0.1:{port}"
    await health.stop()


def publish(settings: Settings, records: list[tuple[str, str, bytes]]) -> None:
    producer = Producer(settings.kafka.librdkafka_config())
    for topic, key, value in records:
        producer.produce(settings.topic_prefix + topic, value, key=key)
    assert producer.flush(10) == 0


async def wait_for(url: str, predicate: Any, *, timeout_s: float = 30) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    async with httpx.AsyncClient() as client:
        while True:
            body = (await client.get(url)).json()
            if predicate(body):
                return body
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"figures never matched: {body}")
            await asyncio.sleep(0.3)


async def test_figures_add_up_runs_steps_and_pending_per_mode(
    settings: Settings, metrics_url: str
) -> None:
    records = [
        ("enrollments", "acct-1", CODEC.encode("enrollment", enrollment("r1"))),
        ("enrollments", "acct-1", CODEC.encode("enrollment", enrollment("r2"))),
        ("runs", "r1", CODEC.encode("run", run_end("r1", "OK"))),
        ("runs", "r2", CODEC.encode("run", run_end("r2", "ERROR"))),
        ("runs", "t1", CODEC.encode("run", run_end("t1", "OK", mode="TEST"))),
        (
            "step-results",
            "r1",
            CODEC.encode("step_result", step_result("r1", "0", "OK")),
        ),
        (
            "step-results",
            "r2",
            CODEC.encode("step_result", step_result("r2", "1", "ERROR")),
        ),
        (
            "matcher-status",
            "wf-1",
            CODEC.encode("matcher_status", matcher_status(0, 4)),
        ),
        (
            "matcher-status",
            "wf-1",
            CODEC.encode("matcher_status", matcher_status(1, 3)),
        ),
    ]
    # The same run end delivered twice must still count once.
    records.append(("runs", "r1", CODEC.encode("run", run_end("r1", "OK"))))
    publish(settings, records)

    live = await wait_for(
        f"{metrics_url}/workflows/wf-1",
        lambda body: body["totals"].get("done") == 2 and body["pending"] == 7,
    )
    test = await wait_for(
        f"{metrics_url}/workflows/wf-1?mode=test",
        lambda body: body["totals"].get("done") == 1,
    )

    assert live["totals"] == {"enrolled": 2, "done": 2, "ok": 1, "error": 1}
    assert live["held_by_account_cap"] == 2
    assert live["last_run"] == {"ok": 1, "error": 1}
    assert live["steps"] == {"0": {"ok": 1}, "1": {"error": 1}}
    assert live["recent_errors"][0]["error"] == "CRM said 400: bad email"
    assert sum(live["done_by_hour"].values()) == 2
    assert test["totals"] == {"done": 1, "ok": 1}


async def test_prometheus_exposition_lists_the_figures(
    settings: Settings, metrics_url: str
) -> None:
    publish(settings, [("runs", "r9", CODEC.encode("run", run_end("r9", "OK")))])
    await wait_for(
        f"{metrics_url}/workflows/wf-1", lambda body: body["totals"].get("ok") == 1
    )

    async with httpx.AsyncClient() as client:
        response = await client.get(f"{metrics_url}/metrics")

    assert response.headers["content-type"].startswith("text/plain")
    assert 'signalflow_runs_total{mode="LIVE",outcome="ok",workflow="wf-1"} 1.0' in (
        response.text
    )


async def test_an_undecodable_event_becomes_a_dead_letter_and_is_counted(
    settings: Settings, metrics_url: str
) -> None:
    publish(settings, [("runs", "bad", b"not avro at all")])

    body = await wait_for(
        f"{metrics_url}/dead-letters",
        lambda body: body["by_source_topic"].get(settings.topic_prefix + "runs") == 1,
    )

    assert "C3 01" in body["recent"][0]["error"]
