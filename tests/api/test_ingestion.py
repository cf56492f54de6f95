"""Signals and profiles over HTTP: good items published, bad ones reported."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
from api_harness import api_settings, client_for, running_api
from matcher_stand_in import CODEC, assigned_consumer

from signalflow.settings import Settings
from signalflow.topics import Topics


def published(
    settings: Settings, topic: str, schema: str, *, marker: str, count: int
) -> list[tuple[bytes, dict[str, Any]]]:
    """(key, record) of the records on `topic` whose source or key has `marker`."""
    consumer = assigned_consumer(settings, Topics(settings).name(topic))
    found: list[tuple[bytes, dict[str, Any]]] = []
    deadline = time.monotonic() + 15
    try:
        while len(found) < count and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            record = CODEC.decode(schema, message.value())
            if marker in (record.get("source", ""), record.get("key", "")):
                found.append((message.key(), record))
    finally:
        consumer.close()
    return found


def signal(marker: str, **changes: Any) -> dict[str, Any]:
    return {
        "signal_id": f"sig-{uuid.uuid4().hex[:8]}",
        "type": "funding",
        "scope": "COMPANY",
        "account_key": "acme.com",
        "occurred_at": "2024-05-01T09:30:00Z",
        "source": marker,
        "attributes": {"amount": "25000000"},
        **changes,
    }


async def test_good_signals_are_published_and_bad_ones_reported(
    client: httpx.AsyncClient, shared_settings: Settings
) -> None:
    marker = f"source-{uuid.uuid4().hex[:8]}"
    batch = [
        signal(marker),
        signal(marker, scope="PERSON"),
        signal(marker, type="Job Change", occurred_at="yesterday"),
        "not an object",
        signal(marker, type="job_change", scope="PERSON", person_key="jane@acme.com"),
    ]

    response = await client.post("/signals", json=batch)

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["accepted"] == 2
    rejected = {(r["index"], r["path"]) for r in report["rejected"]}
    assert rejected == {(1, "person_key"), (2, "type"), (2, "occurred_at"), (3, "")}
    reasons = {r["index"]: r["reason"] for r in report["rejected"]}
    assert "PERSON-scoped signal needs the person's key" in reasons[1]

    records = published(shared_settings, "signals", "signal", marker=marker, count=2)
    assert [key for key, _ in records] == [b"acme.com", b"acme.com"]
    assert sorted(record["type"] for _, record in records) == ["funding", "job_change"]


async def test_profiles_are_published_keyed_by_their_own_key(
    client: httpx.AsyncClient, shared_settings: Settings
) -> None:
    key = f"person-{uuid.uuid4().hex[:8]}"
    batch = [
        {
            "key": key,
            "kind": "PERSON",
            "account_key": "acme.com",
            "updated_at": 1714555800000,
            "email": "jane@acme.com",
            "fields": {"title": "VP Sales", "employees": 1200},
        },
        {"key": "x", "kind": "PERSON", "updated_at": "2024-05-01T09:30:00Z"},
        {"key": "y", "kind": "ROBOT", "updated_at": "2024-05-01T09:30:00Z"},
    ]

    response = await client.post("/profiles", json=batch)

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["accepted"] == 1
    assert {(r["index"], r["path"]) for r in report["rejected"]} == {
        (1, "account_key"),
        (2, "kind"),
    }
    records = published(shared_settings, "profiles", "profile", marker=key, count=1)
    assert records[0][0] == key.encode()
    assert records[0][1]["fields"] == {"title": "VP Sales", "employees": 1200}


async def test_a_batch_must_be_an_array_of_bounded_size(
    shared_settings: Settings,
) -> None:
    own = api_settings(max_batch_items=2)
    async with running_api(shared_settings, own) as app, client_for(app) as client:
        too_many = await client.post("/signals", json=[{}, {}, {}])
        not_a_list = await client.post("/profiles", json={"key": "x"})
        empty = await client.post("/signals", json=[])

    assert too_many.status_code == 413
    assert too_many.json() == {
        "detail": "A batch carries at most 2 items; this one has 3."
    }
    assert not_a_list.status_code == 422
    assert not_a_list.json()["errors"][0]["message"] == "Send a JSON array of items."
    assert empty.json() == {"accepted": 0, "rejected": []}
