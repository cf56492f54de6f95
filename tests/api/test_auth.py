"""Every route but /health needs an accepted bearer token, and says so with 401."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from api_harness import OTHER_TOKEN, TOKEN, client_for
from api_samples import audience_body, workflow_body
from fastapi import FastAPI

OPEN = {"/health"}
PARAMETER = re.compile(r"{(\w+)}")


@pytest.fixture(scope="module")
async def existing(api: FastAPI) -> dict[str, str]:
    """Real objects, so an unguarded route would have data to leak."""
    async with client_for(api) as http:
        audience = (await http.post("/audiences", json=audience_body())).json()
        workflow = await http.post("/workflows", json=workflow_body(audience["id"]))
        workflow_id = workflow.json()["id"]
        run = await http.post(f"/workflows/{workflow_id}/test-runs", json={})
        assert run.status_code == 202, run.text
    return {
        "audience_id": audience["id"],
        "workflow_id": workflow_id,
        "command_id": run.json()["command_id"],
        "version": "1",
        "slug": "funding-multi-thread",
    }


def guarded_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) of the api's OpenAPI document but the open ones."""
    routes = [
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path not in OPEN
        for method in operations
    ]
    assert len(routes) >= 25  # every route of the api, not a sample
    return routes


def filled(path: str, values: dict[str, str]) -> str:
    return PARAMETER.sub(lambda match: values[match.group(1)], path)


def body_for(path: str, values: dict[str, str]) -> Any:
    if path.endswith("/activate"):
        return {"execution_timing": "future_only"}
    if path == "/audiences" or path.startswith("/audiences/"):
        return audience_body()
    if path.startswith("/workflows") and path.count("/") <= 2:
        return workflow_body(values["audience_id"])
    if path in ("/signals", "/profiles"):
        return []
    return {}


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "Send Authorization: Bearer <token>."),
        ({"Authorization": "Bearer not-a-token"}, "The bearer token is not accepted."),
        ({"Authorization": f"Basic {TOKEN}"}, "Send Authorization: Bearer <token>."),
        ({"Authorization": "Bearer "}, "Send Authorization: Bearer <token>."),
    ],
    ids=["missing", "wrong token", "other scheme", "empty token"],
)
async def test_every_route_refuses_a_request_without_an_accepted_token(
    api: FastAPI, existing: dict[str, str], headers: dict[str, str], reason: str
) -> None:
    async with client_for(api, token=None) as anonymous:
        for method, path in guarded_routes(api):
            url = filled(path, existing)
            response = await anonymous.request(
                method, url, json=body_for(path, existing), headers=headers
            )

            assert response.status_code == 401, (method, url, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json() == {"detail": reason}


async def test_refused_requests_change_nothing(
    api: FastAPI, existing: dict[str, str]
) -> None:
    async with client_for(api, token=None) as anonymous, client_for(api) as http:
        before = (await http.get("/audiences")).json()
        await anonymous.post("/audiences", json=audience_body())
        await anonymous.delete(f"/audiences/{existing['audience_id']}")

        assert (await http.get("/audiences")).json() == before


async def test_each_configured_token_is_accepted(
    api: FastAPI, existing: dict[str, str]
) -> None:
    for token in (TOKEN, OTHER_TOKEN):
        async with client_for(api, token=token) as http:
            response = await http.get(f"/audiences/{existing['audience_id']}")
            assert response.status_code == 200


async def test_the_guarded_reads_do_answer_with_a_token(
    api: FastAPI, existing: dict[str, str]
) -> None:
    async with client_for(api) as http:
        for method, path in guarded_routes(api):
            if method != "GET" or path.endswith("/events"):
                continue
            response = await http.get(filled(path, existing))
            assert response.status_code == 200, (path, response.text)


async def test_health_needs_no_token(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/health")

    assert response.status_code == 200, response.text
    assert response.json()["state"] == "running"
    assert all(response.json()["components"].values())
