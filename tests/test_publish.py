"""`signalflow publish`: good JSON lines reach the broker, bad ones are named."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer
from typer.testing import CliRunner

from signalflow.contracts import Codec
from signalflow.contracts.cli import publish_app
from signalflow.contracts.errors import InputError
from signalflow.contracts.inputs import validate_profile, validate_signal
from signalflow.settings import Settings
from signalflow.topics import Topics

GOOD_SIGNAL = {
    "signal_id": "sig-1",
    "type": "funding",
    "scope": "COMPANY",
    "account_key": "acme",
    "occurred_at": "2024-05-01T09:30:00Z",
    "source": "crunchbase",
    "attributes": {"amount": "20M", "round": "B"},
}
GOOD_PERSON_SIGNAL = {
    **GOOD_SIGNAL,
    "signal_id": "sig-2",
    "type": "job_change",
    "scope": "PERSON",
    "account_key": "globex",
    "person_key": "globex-ada",
    "occurred_at": 1714555800000,
    "attributes": {},
}


def cli_env(settings: Settings) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "SIGNALFLOW_TOPIC_PREFIX": settings.topic_prefix,
        "COLUMNS": "200",
    }


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def consume_all(settings: Settings, topic: str, count: int) -> list[Any]:
    """Read `count` messages from the start of `topic`, failing after 30 s."""
    consumer = Consumer(
        {
            **settings.kafka.librdkafka_config(),
            "group.id": f"test-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages: list[Any] = []
    deadline = time.monotonic() + 30
    try:
        while len(messages) < count and time.monotonic() < deadline:
            batch = consumer.consume(num_messages=count - len(messages), timeout=1.0)
            messages.extend(m for m in batch if m.error() is None)
    finally:
        consumer.close()
    return messages


def test_publish_signals_sends_good_lines_and_names_bad_ones(
    tmp_path: Path, settings: Settings, topics: Topics
) -> None:
    bad_person = {**GOOD_PERSON_SIGNAL, "signal_id": "sig-3", "person_key": None}
    bad_time = {**GOOD_SIGNAL, "signal_id": "sig-4", "occurred_at": "2024-05-01"}
    file = write_lines(
        tmp_path / "signals.jsonl",
        [
            json.dumps(GOOD_SIGNAL),
            json.dumps(bad_person),
            "",
            "{not json",
            json.dumps(GOOD_PERSON_SIGNAL),
            json.dumps(bad_time),
        ],
    )

    result = CliRunner().invoke(
        publish_app, ["signals", str(file)], env=cli_env(settings)
    )

    assert result.exit_code == 1, result.output
    assert "person_key" in result.output and "line" in result.output
    assert "occurred_at" in result.output and "not JSON" in result.output
    rejected_lines = {
        line.split()[1] for line in result.output.splitlines() if line.startswith("│")
    }
    assert {"2", "4", "6"} <= rejected_lines
    assert "Published 2 signals" in result.output

    messages = consume_all(settings, topics.name("signals"), 2)
    codec = Codec.load()
    by_key = {m.key(): codec.decode("signal", m.value()) for m in messages}
    assert set(by_key) == {b"acme", b"globex"}
    assert by_key[b"acme"]["signal_id"] == "sig-1"
    assert by_key[b"acme"]["attributes"] == {"amount": "20M", "round": "B"}
    assert by_key[b"globex"]["person_key"] == "globex-ada"
    assert by_key[b"globex"]["occurred_at"].isoformat() == "2024-05-01T09:30:00+00:00"


def test_publish_profiles_keys_each_profile_by_its_key(
    tmp_path: Path, settings: Settings, topics: Topics
) -> None:
    account = {"key": "acme", "kind": "ACCOUNT", "updated_at": "2024-05-01T00:00:00Z"}
    person = {
        "key": "acme-bob",
        "kind": "PERSON",
        "account_key": "acme",
        "updated_at": "2024-05-02T00:00:00+02:00",
        "email": "bob@acme.example",
        "owner": "rep-7",
        "fields": {"title": "VP Sales", "employees": 250, "score": 0.5},
    }
    file = write_lines(
        tmp_path / "profiles.jsonl", [json.dumps(account), json.dumps(person)]
    )

    result = CliRunner().invoke(
        publish_app, ["profiles", str(file)], env=cli_env(settings)
    )

    assert result.exit_code == 0, result.output
    assert "Published 2 profiles" in result.output
    messages = consume_all(settings, topics.name("profiles"), 2)
    codec = Codec.load()
    by_key = {m.key(): codec.decode("profile", m.value()) for m in messages}
    assert by_key[b"acme"]["account_key"] == "acme"
    assert by_key[b"acme-bob"]["fields"] == {
        "title": "VP Sales",
        "employees": 250,
        "score": 0.5,
    }
    assert by_key[b"acme-bob"]["updated_at"].isoformat() == "2024-05-01T22:00:00+00:00"


def test_epoch_milliseconds_keep_their_last_millisecond() -> None:
    record = validate_signal({**GOOD_SIGNAL, "occurred_at": 1714555800123})

    assert record["occurred_at"] == datetime(2024, 5, 1, 9, 30, 0, 123000, tzinfo=UTC)


def test_invalid_signal_names_every_bad_field() -> None:
    bad = {**GOOD_PERSON_SIGNAL, "person_key": None, "attributes": {"amount": 5}}
    bad["occurred_at"] = 10**20

    with pytest.raises(InputError) as caught:
        validate_signal(bad)

    paths = [problem.path for problem in caught.value.problems]
    assert paths == ["person_key", "occurred_at", "attributes.amount"]


def test_account_profile_is_its_own_account_and_person_needs_one() -> None:
    account = validate_profile(
        {"key": "acme", "kind": "ACCOUNT", "updated_at": "2024-05-01T00:00:00Z"}
    )
    assert account["account_key"] == "acme"

    with pytest.raises(InputError) as caught:
        validate_profile(
            {
                "key": "bob",
                "kind": "PERSON",
                "updated_at": "2024-05-01T00:00:00Z",
                "fields": {"tags": ["a"]},
                "past_owners": ["rep-1", 7],
            }
        )
    paths = [problem.path for problem in caught.value.problems]
    assert paths == ["account_key", "past_owners[1]", "fields.tags"]
