"""Monitoring figures kept by the metrics service, prebuilt campaigns, health."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from api_samples import audience_body, workflow_body
from confluent_kafka import Producer
from run_records import CODEC, RunPublisher, enrollment, run_end

from services.metrics.service import MetricsService
from signalflow.settings import Settings
from signalflow.topics import Topics
from signalflow.workflow.prebuilt import CAMPAIGNS


def matcher_status(workflow_id: str, partition: int, pending: int) -> dict[str, Any]:
    return {
        "workflow_id": workflow_id,
        "partition": partition,
        "reported_at": datetime.now(UTC),
        "pending": pending,
        "held_by_account_cap": 1,
        "held_by_rep_cap": 0,
        "expired": 0,
        "last_run_at": datetime(2024, 6, 3, 9, 0, tzinfo=UTC),
        "last_run_enrolled": 2,
        "preview": None,
    }


async def test_metrics_show_what_the_metrics_service_counted(
    client: httpx.AsyncClient, shared_settings: Settings
) -> None:
    audience = (await client.post("/audiences", json=audience_body())).json()
    workflow_id = (
        await client.post("/workflows", json=workflow_body(audience["id"]))
    ).json()["id"]
    publisher = RunPublisher(shared_settings)
    for person, status in (("ok-1", "OK"), ("ok-2", "OK"), ("bad", "ERROR")):
        entry = enrollment(
            workflow_id=workflow_id,
            workflow_version=1,
            mode="LIVE",
            command_id=None,
            person_key=person,
        )
        publisher.enrolled(entry)
        failure = {"failed_step": "0", "error": "CRM down"} if status == "ERROR" else {}
        publisher.ended(run_end(entry, status=status, **failure))
    statuses = Producer(shared_settings.kafka.librdkafka_config())
    for partition, pending in ((0, 4), (1, 3)):
        statuses.produce(
            Topics(shared_settings).name("matcher-status"),
            CODEC.encode(
                "matcher_status", matcher_status(workflow_id, partition, pending)
            ),
            key=f"{workflow_id}:{partition}".encode(),
        )
    statuses.flush(10)

    async with MetricsService(shared_settings):
        metrics = await metrics_when(
            client, workflow_id, lambda m: m["totals"].get("done") == 3
        )

    assert metrics["pending"] == 7
    assert metrics["held_by_account_cap"] == 2
    assert metrics["totals"] == {"enrolled": 3, "done": 3, "ok": 2, "error": 1}
    assert metrics["last_run_at"].startswith("2024-06-03T09:00")
    assert [sample["person_key"] for sample in metrics["recent_errors"]] == ["bad"]
    assert metrics["recent_errors"][0]["error"] == "CRM down"


async def metrics_when(
    client: httpx.AsyncClient, workflow_id: str, done: Any, timeout_s: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        response = await client.get(f"/workflows/{workflow_id}/metrics")
        assert response.status_code == 200, response.text
        metrics: dict[str, Any] = response.json()
        if done(metrics):
            return metrics
        assert time.monotonic() < deadline, f"metrics never got there: {metrics}"
        await asyncio.sleep(0.3)


async def test_metrics_of_an_unknown_workflow_are_404(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/workflows/wf_nobody/metrics")

    assert response.status_code == 404


async def test_prebuilt_campaigns_are_listed_in_library_order(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/prebuilt")

    assert response.status_code == 200
    assert [c["slug"] for c in response.json()] == list(CAMPAIGNS)
    assert all(c["title"] and c["description"] for c in response.json())


async def test_instantiating_a_campaign_saves_its_audience_and_draft_workflow(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post("/prebuilt/funding-multi-thread/instantiate")

    assert created.status_code == 201, created.text
    audience, workflow = created.json()["audience"], created.json()["workflow"]
    assert (audience["version"], workflow["version"]) == (1, 1)
    assert workflow["audience_id"] == audience["id"]
    assert workflow["status"] == "draft"
    saved = await client.get(f"/workflows/{workflow['id']}")
    assert saved.json() == workflow
    again = (await client.post("/prebuilt/funding-multi-thread/instantiate")).json()
    assert again["workflow"]["id"] != workflow["id"]


async def test_every_prebuilt_campaign_can_be_instantiated(
    client: httpx.AsyncClient,
) -> None:
    for slug in CAMPAIGNS:
        response = await client.post(f"/prebuilt/{slug}/instantiate")
        assert response.status_code == 201, (slug, response.text)


async def test_an_unknown_campaign_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/prebuilt/no-such-campaign/instantiate")

    assert response.status_code == 404
    assert "GET /prebuilt" in response.json()["detail"]
