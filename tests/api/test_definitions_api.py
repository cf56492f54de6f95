"""Audiences and workflows over HTTP: create, read, update, delete, history."""

from __future__ import annotations

import httpx
from api_samples import audience_body, new_id, workflow_body


async def create_audience(client: httpx.AsyncClient, **changes: object) -> str:
    response = await client.post("/audiences", json=audience_body(**changes))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_create_assigns_an_id_and_version_one(client: httpx.AsyncClient) -> None:
    response = await client.post("/audiences", json=audience_body())

    assert response.status_code == 201, response.text
    created = response.json()
    assert created["id"].startswith("aud_")
    assert created["version"] == 1
    assert response.headers["location"] == f"/audiences/{created['id']}"
    fetched = await client.get(f"/audiences/{created['id']}")
    assert fetched.json() == created


async def test_update_saves_the_next_version_and_keeps_the_old(
    client: httpx.AsyncClient,
) -> None:
    audience_id = await create_audience(client)

    updated = await client.put(
        f"/audiences/{audience_id}", json=audience_body(name="Renamed")
    )

    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2
    assert (await client.get(f"/audiences/{audience_id}")).json()["name"] == "Renamed"
    first = await client.get(f"/audiences/{audience_id}/versions/1")
    assert first.json()["name"] == "Funding account multi-thread"
    history = (await client.get(f"/audiences/{audience_id}/versions")).json()
    assert [(v["version"], v["deleted"]) for v in history] == [(1, False), (2, False)]


async def test_workflow_lifecycle_from_draft_to_deleted(
    client: httpx.AsyncClient,
) -> None:
    audience_id = await create_audience(client)
    workflow_id = new_id("wf")

    created = await client.post(
        "/workflows", json=workflow_body(audience_id, workflow_id)
    )
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "draft"
    recipients = created.json()["steps"][2]["params"]["recipients"]
    assert [recipient["kind"] for recipient in recipients] == ["record_owner"]

    listed = (await client.get("/workflows")).json()
    assert workflow_id in [workflow["id"] for workflow in listed]

    deleted = await client.delete(f"/workflows/{workflow_id}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"id": workflow_id, "version": 2}
    assert (await client.get(f"/workflows/{workflow_id}")).status_code == 404
    old = await client.get(f"/workflows/{workflow_id}/versions/1")
    assert old.status_code == 200
    history = (await client.get(f"/workflows/{workflow_id}/versions")).json()
    assert [(v["version"], v["deleted"], v["status"]) for v in history] == [
        (1, False, "draft"),
        (2, True, "draft"),
    ]


async def test_an_id_is_never_reused(client: httpx.AsyncClient) -> None:
    audience_id = await create_audience(client, audience_id=new_id("aud"))
    again = await client.post("/audiences", json=audience_body(audience_id))
    assert again.status_code == 409
    assert "is taken" in again.json()["detail"]

    await client.delete(f"/audiences/{audience_id}")
    after_delete = await client.post("/audiences", json=audience_body(audience_id))
    assert after_delete.status_code == 409
    assert "was deleted" in after_delete.json()["detail"]


async def test_an_audience_of_an_active_workflow_cannot_be_deleted(
    client: httpx.AsyncClient,
) -> None:
    audience_id = await create_audience(client)
    workflow = await client.post("/workflows", json=workflow_body(audience_id))
    assert workflow.status_code == 201, workflow.text
    workflow_id = workflow.json()["id"]
    activated = await client.post(
        f"/workflows/{workflow_id}/activate", json={"execution_timing": "future_only"}
    )
    assert activated.status_code == 200, activated.text

    refused = await client.delete(f"/audiences/{audience_id}")

    assert refused.status_code == 409
    assert workflow_id in refused.json()["detail"]
    assert (await client.get(f"/audiences/{audience_id}")).status_code == 200


async def test_an_audience_another_one_includes_cannot_be_deleted(
    client: httpx.AsyncClient,
) -> None:
    inner = await create_audience(client)
    outer = await create_audience(
        client, filter={"kind": "in_audience", "audience_id": inner}
    )

    refused = await client.delete(f"/audiences/{inner}")

    assert refused.status_code == 409
    assert outer in refused.json()["detail"]


async def test_unknown_objects_and_versions_are_404(client: httpx.AsyncClient) -> None:
    audience_id = await create_audience(client)
    for path in (
        f"/audiences/{new_id('aud')}",
        f"/audiences/{audience_id}/versions/2",
        f"/workflows/{audience_id}",
        f"/workflows/{new_id('wf')}/versions",
    ):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.json()["detail"]
