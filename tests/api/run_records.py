"""Records of a run as the matcher, the dispatcher and the actions write them.

The api only reads `enrollments`, `step-results` and `runs`; these builders let a
test publish what those services would, on the real broker.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Producer

from signalflow.contracts import Codec
from signalflow.settings import Settings
from signalflow.topics import Topics

CODEC = Codec.load()
START = datetime(2024, 6, 3, 9, 0, tzinfo=UTC)


def profile(key: str, *, kind: str, account_key: str) -> dict[str, Any]:
    return {
        "key": key,
        "kind": kind,
        "account_key": account_key,
        "updated_at": START,
        "deleted": False,
        "email": f"{key}@example.com" if kind == "PERSON" else None,
        "owner": "rep-1",
        "past_owners": [],
        "last_activity_at": None,
        "fields": {"first_name": key.title()},
    }


def enrollment(
    *,
    workflow_id: str,
    workflow_version: int,
    mode: str,
    command_id: str | None,
    person_key: str,
) -> dict[str, Any]:
    account_key = f"{person_key}-account"
    return {
        "run_id": f"run-{uuid.uuid4().hex}",
        "workflow_id": workflow_id,
        "workflow_version": workflow_version,
        "mode": mode,
        "command_id": command_id,
        "person_key": person_key,
        "account_key": account_key,
        "enrolled_at": START,
        "person": profile(person_key, kind="PERSON", account_key=account_key),
        "account": profile(account_key, kind="ACCOUNT", account_key=account_key),
        "signals": [],
        "explanation": [],
    }


def step_command(
    entry: dict[str, Any], *, step_id: str, action_type: str, attempt: int = 1
) -> dict[str, Any]:
    return {
        "run_id": entry["run_id"],
        "step_id": step_id,
        "idempotency_key": f"{entry['run_id']}:{step_id}",
        "attempt": attempt,
        "max_attempts": 5,
        "action_type": action_type,
        "workflow_id": entry["workflow_id"],
        "workflow_version": entry["workflow_version"],
        "mode": entry["mode"],
        "params": json.dumps({}),
        "enrollment": entry,
        "outputs": {},
        "errors": [],
        "run_started_at": START,
        "issued_at": START,
    }


def step_result(
    command: dict[str, Any],
    *,
    status: str = "OK",
    outputs: dict[str, str] | None = None,
    error: str | None = None,
    retryable: bool = False,
    seconds: int = 1,
) -> dict[str, Any]:
    return {
        "run_id": command["run_id"],
        "step_id": command["step_id"],
        "idempotency_key": command["idempotency_key"],
        "attempt": command["attempt"],
        "status": status,
        "retryable": retryable,
        "retry_after_ms": None,
        "error": error,
        "outputs": outputs or {},
        "finished_at": START + timedelta(seconds=seconds),
        "command": CODEC.encode("step_command", command),
    }


def run_end(
    entry: dict[str, Any],
    *,
    status: str = "OK",
    failed_step: str | None = None,
    error: str | None = None,
    steps_ok: int = 0,
    steps_failed: int = 0,
) -> dict[str, Any]:
    return {
        "run_id": entry["run_id"],
        "workflow_id": entry["workflow_id"],
        "workflow_version": entry["workflow_version"],
        "mode": entry["mode"],
        "status": status,
        "failed_step": failed_step,
        "error": error,
        "person_key": entry["person_key"],
        "account_key": entry["account_key"],
        "started_at": START,
        "ended_at": START + timedelta(seconds=30),
        "steps_ok": steps_ok,
        "steps_failed": steps_failed,
    }


class RunPublisher:
    """Publishes run records to their topics, keyed by run id (or account)."""

    def __init__(self, settings: Settings) -> None:
        self._topics = Topics(settings)
        self._producer = Producer(settings.kafka.librdkafka_config())

    def enrolled(self, entry: dict[str, Any]) -> None:
        self._send("enrollments", "enrollment", entry, entry["account_key"])

    def result(self, result: dict[str, Any]) -> None:
        self._send("step-results", "step_result", result, result["run_id"])

    def ended(self, run: dict[str, Any]) -> None:
        self._send("runs", "run", run, run["run_id"])

    def flush(self) -> None:
        self._producer.flush(10)

    def _send(self, topic: str, schema: str, record: dict[str, Any], key: str) -> None:
        self._producer.produce(
            self._topics.name(topic), CODEC.encode(schema, record), key=key.encode()
        )
        self._producer.flush(10)
