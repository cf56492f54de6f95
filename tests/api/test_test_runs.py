"""Test runs and dry runs: the command, then each prospect's results per step as
the run's events arrive, from any api replica, as a report and as events."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
from api_harness import (
    api_settings,
    client_for,
    live_server,
    remote_client,
    running_api,
)
from api_samples import audience_body, workflow_body
from matcher_stand_in import read_commands
from run_records import RunPublisher, enrollment, run_end, step_command, step_result

from services.api.app import create_app
from signalflow.settings import Settings

PARTITIONS = 3


async def new_workflow(client: httpx.AsyncClient) -> str:
    audience = (await client.post("/audiences", json=audience_body())).json()
    created = await client.post("/workflows", json=workflow_body(audience["id"]))
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def report_when(
    client: httpx.AsyncClient,
    url: str,
    done: Any,
    *,
    timeout_s: float = 20.0,
) -> dict[str, Any]:
    """Poll the report until `done(report)` holds; fail with the last report."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = await client.get(url)
        assert response.status_code == 200, response.text
        report: dict[str, Any] = response.json()
        if done(report):
            return report
        assert time.monotonic() < deadline, f"report never got there: {report}"
        await asyncio.sleep(0.2)


async def test_a_test_run_sends_its_command_and_reports_each_step(
    client: httpx.AsyncClient, shared_settings: Settings
) -> None:
    workflow_id = await new_workflow(client)

    started = await client.post(f"/workflows/{workflow_id}/test-runs", json={})

    assert started.status_code == 202, started.text
    run = started.json()
    assert (run["mode"], run["limit"], run["workflow_version"]) == ("TEST", 10, 1)
    copies = read_commands(
        shared_settings, command_id=run["command_id"], copies=PARTITIONS
    )
    assert sorted(partition for partition, _ in copies) == list(range(PARTITIONS))
    assert {(c["kind"], c["limit"]) for _, c in copies} == {("TEST_RUN", 10)}

    publisher = RunPublisher(shared_settings)
    ok_run = enrollment(
        workflow_id=workflow_id,
        workflow_version=1,
        mode="TEST",
        command_id=run["command_id"],
        person_key="ada",
    )
    publisher.enrolled(ok_run)
    upsert = step_command(ok_run, step_id="0", action_type="crm-upsert")
    publisher.result(step_result(upsert, outputs={"record_id": "003A"}))
    notify = step_command(ok_run, step_id="2", action_type="slack")
    publisher.result(step_result(notify, outputs={"channel": "D1"}, seconds=5))
    publisher.ended(run_end(ok_run, steps_ok=2))

    failed_run = enrollment(
        workflow_id=workflow_id,
        workflow_version=1,
        mode="TEST",
        command_id=run["command_id"],
        person_key="grace",
    )
    # The end is published first: the topics are read independently.
    publisher.ended(
        run_end(
            failed_run,
            status="ERROR",
            failed_step="0",
            error="CRM refused: duplicate",
            steps_failed=1,
        )
    )
    publisher.enrolled(failed_run)
    first = step_command(failed_run, step_id="0", action_type="crm-upsert")
    publisher.result(
        step_result(first, status="ERROR", error="timeout", retryable=True)
    )
    second = step_command(failed_run, step_id="0", action_type="crm-upsert", attempt=2)
    publisher.result(
        step_result(second, status="ERROR", error="CRM refused: duplicate", seconds=3)
    )

    report = await report_when(
        client,
        run["results_url"],
        lambda r: r["finished"] == 2 and r["enrolled"] == 2,
    )

    assert (report["ok"], report["errors"], report["mode"]) == (1, 1, "TEST")
    prospects = {p["person_key"]: p for p in report["prospects"]}
    ada = prospects["ada"]
    assert ada["status"] == "ok"
    assert [(s["step_id"], s["step_kind"], s["step_name"]) for s in ada["steps"]] == [
        ("0", "crm_upsert", "Upsert"),
        ("2", "slack", None),
    ]
    assert ada["steps"][0]["outputs"] == {"record_id": "003A"}
    grace = prospects["grace"]
    assert (grace["status"], grace["failed_step"], grace["error"]) == (
        "error",
        "0",
        "CRM refused: duplicate",
    )
    assert [(s["attempt"], s["error"]) for s in grace["steps"]] == [
        (2, "CRM refused: duplicate")
    ]


async def test_a_dry_run_shows_what_each_step_would_send(
    client: httpx.AsyncClient, shared_settings: Settings
) -> None:
    workflow_id = await new_workflow(client)
    started = await client.post(f"/workflows/{workflow_id}/dry-runs", json={"limit": 3})
    assert started.status_code == 202, started.text
    run = started.json()
    copies = read_commands(
        shared_settings, command_id=run["command_id"], copies=PARTITIONS
    )
    assert {(c["kind"], c["limit"]) for _, c in copies} == {("DRY_RUN", 3)}

    publisher = RunPublisher(shared_settings)
    entry = enrollment(
        workflow_id=workflow_id,
        workflow_version=1,
        mode="DRY_RUN",
        command_id=run["command_id"],
        person_key="linus",
    )
    publisher.enrolled(entry)
    notify = step_command(entry, step_id="2", action_type="slack")
    would_send = {"would_post": "*Linus* at Linus-Account raised funding"}
    publisher.result(step_result(notify, outputs=would_send))

    report = await report_when(
        client,
        run["results_url"],
        lambda r: bool(r["prospects"]) and r["prospects"][0]["steps"],
    )

    assert report["mode"] == "DRY_RUN"
    prospect = report["prospects"][0]
    assert prospect["status"] == "running"
    assert prospect["steps"][0]["outputs"] == would_send


async def test_live_runs_and_other_commands_stay_out_of_a_report(
    client: httpx.AsyncClient, shared_settings: Settings
) -> None:
    workflow_id = await new_workflow(client)
    mine = (await client.post(f"/workflows/{workflow_id}/test-runs", json={})).json()
    other = (await client.post(f"/workflows/{workflow_id}/test-runs", json={})).json()
    publisher = RunPublisher(shared_settings)
    live = enrollment(
        workflow_id=workflow_id,
        workflow_version=1,
        mode="LIVE",
        command_id=None,
        person_key="live",
    )
    publisher.enrolled(live)
    publisher.ended(run_end(live))
    for command_id, person in (
        (other["command_id"], "other"),
        (mine["command_id"], "me"),
    ):
        publisher.enrolled(
            enrollment(
                workflow_id=workflow_id,
                workflow_version=1,
                mode="TEST",
                command_id=command_id,
                person_key=person,
            )
        )

    report = await report_when(client, mine["results_url"], lambda r: r["enrolled"])

    assert [p["person_key"] for p in report["prospects"]] == ["me"]


async def test_any_replica_answers_with_the_same_report(
    client: httpx.AsyncClient, shared_settings: Settings
) -> None:
    workflow_id = await new_workflow(client)
    run = (await client.post(f"/workflows/{workflow_id}/test-runs", json={})).json()
    publisher = RunPublisher(shared_settings)
    entry = enrollment(
        workflow_id=workflow_id,
        workflow_version=1,
        mode="TEST",
        command_id=run["command_id"],
        person_key="barbara",
    )
    publisher.enrolled(entry)
    publisher.ended(run_end(entry))
    first = await report_when(client, run["results_url"], lambda r: r["finished"])

    async with running_api(shared_settings) as replica, client_for(replica) as other:
        second = await other.get(run["results_url"])

    assert second.status_code == 200
    assert second.json() == first


async def test_unknown_runs_are_404(client: httpx.AsyncClient) -> None:
    workflow_id = await new_workflow(client)
    other_id = await new_workflow(client)
    run = (await client.post(f"/workflows/{other_id}/test-runs", json={})).json()

    unknown = await client.get(f"/workflows/{workflow_id}/test-runs/cmd_{'0' * 32}")
    elsewhere = await client.get(
        f"/workflows/{workflow_id}/test-runs/{run['command_id']}"
    )

    assert unknown.status_code == elsewhere.status_code == 404


async def test_events_stream_as_they_arrive_and_resume(
    shared_settings: Settings,
) -> None:
    app = create_app(shared_settings, api_settings(sse_keepalive_s=0.3))
    async with live_server(app) as base_url:
        async with remote_client(base_url) as setup:
            workflow_id = await new_workflow(setup)
            run = (
                await setup.post(f"/workflows/{workflow_id}/test-runs", json={})
            ).json()
        publisher = RunPublisher(shared_settings)
        entry = enrollment(
            workflow_id=workflow_id,
            workflow_version=1,
            mode="TEST",
            command_id=run["command_id"],
            person_key="edsger",
        )
        publisher.enrolled(entry)

        events = await read_events(
            base_url,
            run["events_url"],
            publish_after_first=lambda: publisher.result(
                step_result(
                    step_command(entry, step_id="0", action_type="crm-upsert"),
                    outputs={"record_id": "003B"},
                )
            ),
            count=2,
        )
        assert [kind for _, kind, _ in events] == ["enrolled", "step"]
        assert events[1][2]["outputs"] == {"record_id": "003B"}

        resumed = await read_events(
            base_url, run["events_url"], count=1, last_event_id=events[0][0]
        )
        assert resumed == events[1:]


async def read_events(
    base_url: str,
    path: str,
    *,
    count: int,
    publish_after_first: Any = None,
    last_event_id: str | None = None,
) -> list[tuple[str, str, dict[str, Any]]]:
    """Read `count` events from the stream (skipping keep-alives), then close."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    events: list[tuple[str, str, dict[str, Any]]] = []
    fields: dict[str, str] = {}
    async with (
        remote_client(base_url) as http,
        http.stream("GET", path, headers=headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(": ")
                fields[name] = value
                continue
            if not fields:  # the blank line after a keep-alive comment
                continue
            events.append((fields["id"], fields["event"], json.loads(fields["data"])))
            fields = {}
            if len(events) == 1 and publish_after_first is not None:
                await asyncio.to_thread(publish_after_first)
            if len(events) == count:
                break
    return events
