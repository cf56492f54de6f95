"""What the dispatcher's tests share: records to start runs with, a stand-in for the
action services, and a watcher of the topics runs end on.

`FakeActions` is a real confluent-kafka consumer on `actions.<type>` that answers
every command with a `step_result` decided by a script (`Answer` per run, step and
attempt) and records what it received, so tests can check order, duplicates and
timing. The real action services are tested with their own suites.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, Message, Producer

from signalflow.contracts import Codec
from signalflow.kafka.clients import make_producer
from signalflow.settings import Settings
from signalflow.topics import ActionType, Topics
from signalflow.workflow import Workflow

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def workflow(workflow_id: str, steps: list[dict[str, Any]], **extra: Any) -> Workflow:
    """A valid workflow with these steps."""
    return Workflow.model_validate(
        {
            "id": workflow_id,
            "name": f"Workflow {workflow_id}",
            "audience_id": "everyone",
            "steps": steps,
            **extra,
        }
    )


def profile(key: str, account_key: str, *, email: str | None = None) -> dict[str, Any]:
    return {
        "key": key,
        "kind": "PERSON",
        "account_key": account_key,
        "updated_at": NOW,
        "deleted": False,
        "email": email,
        "owner": "owner-1",
        "past_owners": [],
        "last_activity_at": None,
        "fields": {"title": "VP Sales", "first_name": "Ada"},
    }


def enrollment(
    run_id: str,
    workflow_id: str,
    version: int,
    *,
    mode: str = "LIVE",
    email: str | None = "ada@example.com",
    signals: Sequence[str] = ("funding",),
) -> dict[str, Any]:
    """An enrollment record starting run `run_id` on a workflow version."""
    account = f"acct-{run_id}"
    return {
        "run_id": run_id,
        "workflow_id": workflow_id,
        "workflow_version": version,
        "mode": mode,
        "command_id": None if mode == "LIVE" else "cmd-1",
        "person_key": f"person-{run_id}",
        "account_key": account,
        "enrolled_at": NOW,
        "person": profile(f"person-{run_id}", account, email=email),
        "account": None,
        "signals": [
            {
                "signal_id": f"sig-{run_id}-{index}",
                "type": kind,
                "scope": "COMPANY",
                "occurred_at": NOW,
                "attributes": {"amount": "10M"},
            }
            for index, kind in enumerate(signals)
        ],
        "explanation": [],
    }


def produce_enrollments(
    settings: Settings, codec: Codec, records: Iterable[dict[str, Any]]
) -> int:
    """Produce enrollments keyed by account, wait for the acks; return how many."""
    producer = make_producer(settings)
    topic = Topics(settings).name("enrollments")
    count = 0
    for record in records:
        value = codec.encode("enrollment", record)
        _produce(producer, topic, value, record["account_key"].encode())
        count += 1
    producer.flush(30)
    return count


def _produce(producer: Producer, topic: str, value: bytes, key: bytes) -> None:
    while True:
        try:
            producer.produce(topic, value, key=key)
            return
        except BufferError:
            producer.poll(0.05)


@dataclass(frozen=True)
class Answer:
    """How the fake action answers one attempt."""

    status: str = "OK"
    error: str | None = None
    retryable: bool = False
    retry_after_ms: int | None = None
    outputs: dict[str, str] = field(default_factory=dict)


OK = Answer()
Script = Callable[[str, str, int], Answer]


@dataclass(frozen=True)
class Received:
    """One command as the fake action received it."""

    run_id: str
    step_id: str
    attempt: int
    idempotency_key: str
    mode: str
    workflow_version: int
    outputs: dict[str, str]
    errors: list[dict[str, Any]]
    received_ms: int
    answered_ms: int
    produced_ms: int


class FakeActions:
    """Answers the commands of some action types with step results, from a thread.

    Args:
        settings: where the broker is, and the topic prefix.
        actions: the action types to consume.
        script: the answer to (run id, step id, attempt); OK by default.
    """

    def __init__(
        self,
        settings: Settings,
        actions: Sequence[ActionType],
        *,
        script: Script = lambda run, step, attempt: OK,
        codec: Codec | None = None,
    ) -> None:
        topics = Topics(settings)
        self._codec = codec or Codec.load()
        self._script = script
        self._results = topics.name("step-results")
        self._consumer = Consumer(
            {
                **settings.kafka.librdkafka_config(),
                "group.id": f"fake-actions-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 50,
            }
        )
        self._consumer.subscribe([topics.action(action) for action in actions])
        self._producer = make_producer(settings, linger_ms=1)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.received: list[Received] = []
        self._thread = threading.Thread(target=self._run, name="fake-actions")

    def __enter__(self) -> FakeActions:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._thread.join(30)

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def by_run(self) -> dict[str, list[Received]]:
        runs: dict[str, list[Received]] = {}
        for item in self.snapshot():
            runs.setdefault(item.run_id, []).append(item)
        return runs

    def duplicates(self) -> Counter[tuple[str, str, int]]:
        """(run, step, attempt) received more than once, with their counts."""
        counts = Counter((r.run_id, r.step_id, r.attempt) for r in self.snapshot())
        return Counter({key: n for key, n in counts.items() if n > 1})

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                for message in self._consumer.consume(500, 0.05):
                    if message.error() is None:
                        self._answer(message)
                self._producer.poll(0)
        finally:
            self._producer.flush(30)
            self._consumer.close()

    def _answer(self, message: Message) -> None:
        received_ms = now_ms()
        value = message.value() or b""
        command = self._codec.decode("step_command", value)
        run_id, step_id = command["run_id"], command["step_id"]
        answer = self._script(run_id, step_id, command["attempt"])
        answered_ms = now_ms()
        result = {
            "run_id": run_id,
            "step_id": step_id,
            "idempotency_key": command["idempotency_key"],
            "attempt": command["attempt"],
            "status": answer.status,
            "retryable": answer.retryable,
            "retry_after_ms": answer.retry_after_ms,
            "error": answer.error,
            "outputs": answer.outputs,
            "finished_at": answered_ms,
            "command": value,
        }
        _produce(
            self._producer,
            self._results,
            self._codec.encode("step_result", result),
            run_id.encode(),
        )
        with self._lock:
            self.received.append(
                Received(
                    run_id=run_id,
                    step_id=step_id,
                    attempt=command["attempt"],
                    idempotency_key=command["idempotency_key"],
                    mode=command["mode"],
                    workflow_version=command["workflow_version"],
                    outputs=dict(command["outputs"]),
                    errors=list(command["errors"]),
                    received_ms=received_ms,
                    answered_ms=answered_ms,
                    produced_ms=message.timestamp()[1],
                )
            )


class TopicWatcher:
    """Collects the decoded records of one topic from a thread, from the start."""

    def __init__(self, settings: Settings, logical: str, schema: str) -> None:
        self._codec = Codec.load()
        self._schema = schema
        self._consumer = Consumer(
            {
                **settings.kafka.librdkafka_config(),
                "group.id": f"watch-{logical}-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 50,
            }
        )
        self._consumer.subscribe([Topics(settings).name(logical)])
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.records: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._run, name=f"watch-{logical}")

    def __enter__(self) -> TopicWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._thread.join(30)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.records)

    def wait_for(self, count: int, *, timeout_s: float) -> list[dict[str, Any]]:
        """Wait until at least `count` records arrived; return them all.

        Raises TimeoutError saying how many arrived.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            records = self.snapshot()
            if len(records) >= count:
                return records
            time.sleep(0.1)
        raise TimeoutError(
            f"expected {count} records, got {len(self.snapshot())} in {timeout_s}s"
        )

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                for message in self._consumer.consume(500, 0.05):
                    if message.error() is None:
                        self._keep(message)
        finally:
            self._consumer.close()

    def _keep(self, message: Message) -> None:
        record = self._codec.decode(self._schema, message.value() or b"")
        with self._lock:
            self.records.append(record)
