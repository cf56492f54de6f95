"""Activate, pause and preview: new versions, and commands on every partition."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from api_harness import api_settings, client_for, running_api
from api_samples import audience_body, workflow_body
from matcher_stand_in import PreviewAnswerer, commands_of_workflow, read_commands

from signalflow.settings import Settings

PARTITIONS = 3


async def draft_workflow(client: httpx.AsyncClient) -> dict[str, Any]:
    audience = (await client.post("/audiences", json=audience_body())).json()
    created = await client.post("/workflows", json=workflow_body(audience["id"]))
    assert created.status_code == 201, created.text
    return dict(created.json())


def history(response: httpx.Response) -> list[tuple[int, str]]:
    return [(v["version"], v["status"]) for v in response.json()]


async def last_command(
    settings: Settings, workflow_id: str, kind: str
) -> list[tuple[int, dict[str, Any]]]:
    """The copies of the newest command of `kind` for a workflow."""
    copies = await asyncio.to_thread(
        commands_of_workflow, settings, workflow_id=workflow_id
    )
    newest = [c for c in copies if c[1]["kind"] == kind]
    command_id = newest[-1][1]["command_id"]
    return [c for c in newest if c[1]["command_id"] == command_id]


async def test_activate_saves_a_version_and_tells_every_partition(
    client: httpx.AsyncClient, shared_settings: Settings
) -> None:
    workflow = await draft_workflow(client)
    workflow_id = workflow["id"]

    response = await client.post(
        f"/workflows/{workflow_id}/activate", json={"execution_timing": "all_current"}
    )

    assert response.status_code == 200, response.text
    active = response.json()
    assert (active["status"], active["version"], active["timing"]) == (
        "active",
        2,
        "all_current",
    )
    copies = await last_command(shared_settings, workflow_id, "ACTIVATE")
    assert sorted(partition for partition, _ in copies) == list(range(PARTITIONS))
    for _, command in copies:
        assert command["workflow_version"] == 2
        assert command["execution_timing"] == "ALL_CURRENT"
        assert command["partition_count"] == PARTITIONS


async def test_pause_saves_a_version_and_tells_every_partition(
    client: httpx.AsyncClient, shared_settings: Settings
) -> None:
    workflow_id = (await draft_workflow(client))["id"]
    await client.post(
        f"/workflows/{workflow_id}/activate", json={"execution_timing": "future_only"}
    )

    response = await client.post(f"/workflows/{workflow_id}/pause")

    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["version"]) == ("paused", 3)
    copies = await last_command(shared_settings, workflow_id, "PAUSE")
    assert len(copies) == PARTITIONS
    assert {command["workflow_version"] for _, command in copies} == {3}
    versions = await client.get(f"/workflows/{workflow_id}/versions")
    assert history(versions) == [(1, "draft"), (2, "active"), (3, "paused")]


async def test_repeating_an_activation_sends_again_without_a_new_version(
    client: httpx.AsyncClient,
) -> None:
    workflow_id = (await draft_workflow(client))["id"]
    timing = {"execution_timing": "future_only"}
    first = await client.post(f"/workflows/{workflow_id}/activate", json=timing)
    again = await client.post(f"/workflows/{workflow_id}/activate", json=timing)
    other = await client.post(
        f"/workflows/{workflow_id}/activate", json={"execution_timing": "all_current"}
    )

    assert first.json()["version"] == again.json()["version"] == 2
    assert other.status_code == 409
    assert "pause it before" in other.json()["detail"]


async def test_a_draft_cannot_be_paused(client: httpx.AsyncClient) -> None:
    workflow_id = (await draft_workflow(client))["id"]

    response = await client.post(f"/workflows/{workflow_id}/pause")

    assert response.status_code == 409
    assert "is a draft" in response.json()["detail"]


async def test_an_update_keeps_an_active_workflow_active(
    client: httpx.AsyncClient,
) -> None:
    workflow = await draft_workflow(client)
    workflow_id = workflow["id"]
    await client.post(
        f"/workflows/{workflow_id}/activate", json={"execution_timing": "future_only"}
    )

    body = workflow_body(workflow["audience_id"], name="Renamed")
    updated = await client.put(f"/workflows/{workflow_id}", json=body)

    assert updated.status_code == 200, updated.text
    assert (updated.json()["status"], updated.json()["version"]) == ("active", 3)


async def test_deleting_an_active_workflow_pauses_it(
    client: httpx.AsyncClient, shared_settings: Settings
) -> None:
    workflow_id = (await draft_workflow(client))["id"]
    await client.post(
        f"/workflows/{workflow_id}/activate", json={"execution_timing": "future_only"}
    )

    deleted = await client.delete(f"/workflows/{workflow_id}")

    assert deleted.json()["version"] == 3
    copies = await last_command(shared_settings, workflow_id, "PAUSE")
    assert {command["workflow_version"] for _, command in copies} == {3}


async def test_preview_sums_every_partition_and_keeps_twenty_examples(
    client: httpx.AsyncClient, shared_settings: Settings
) -> None:
    workflow_id = (await draft_workflow(client))["id"]
    answers = {
        0: (12, [f"p0-{n}" for n in range(12)]),
        1: (0, []),
        2: (30, [f"p2-{n}" for n in range(20)]),
    }

    with PreviewAnswerer(shared_settings, workflow_id, answers):
        response = await client.post(f"/workflows/{workflow_id}/preview")

    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["matching"] == 42
    assert preview["partitions"] == PARTITIONS
    assert preview["examples"] == [f"p0-{n}" for n in range(12)] + [
        f"p2-{n}" for n in range(8)
    ]
    copies = read_commands(
        shared_settings, command_id=preview["command_id"], copies=PARTITIONS
    )
    assert {command["limit"] for _, command in copies} == {20}


async def test_preview_times_out_when_a_partition_stays_silent(
    shared_settings: Settings,
) -> None:
    own = api_settings(preview_timeout_s=1.5)
    async with running_api(shared_settings, own) as app, client_for(app) as client:
        workflow_id = (await draft_workflow(client))["id"]
        answers = {0: (1, ["a"]), 2: (1, ["b"])}

        with PreviewAnswerer(shared_settings, workflow_id, answers):
            response = await client.post(f"/workflows/{workflow_id}/preview")

    assert response.status_code == 504
    assert response.json() == {
        "detail": "Only 2 of 3 matcher partitions answered the preview within 1.5s;"
        " is the matcher running?"
    }
