"""What the api's tests need of the matcher, over the real broker.

`read_commands()` reads what the api wrote on `control`; `PreviewAnswerer` answers
PREVIEW commands on `matcher-status` the way each matcher partition does (one
record per partition, with the command id), so the api's preview path runs end to
end without a faust worker.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from signalflow.contracts import Codec
from signalflow.settings import Settings
from signalflow.topics import Topics

CODEC = Codec.load()


def assigned_consumer(settings: Settings, topic: str) -> Consumer:
    """A consumer of every partition of `topic`, from the beginning."""
    consumer = Consumer(
        {
            **settings.kafka.librdkafka_config(),
            "group.id": f"stand-in-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    metadata = consumer.list_topics(topic, timeout=10)
    consumer.assign(
        [TopicPartition(topic, p, 0) for p in metadata.topics[topic].partitions]
    )
    return consumer


def read_commands(
    settings: Settings, *, command_id: str, copies: int, timeout_s: float = 15.0
) -> list[tuple[int, dict[str, Any]]]:
    """Return (partition, record) of each copy of one control command."""
    consumer = assigned_consumer(settings, Topics(settings).name("control"))
    found: list[tuple[int, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(found) < copies and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            record = CODEC.decode("control", message.value())
            if record["command_id"] == command_id:
                found.append((message.partition(), record))
    finally:
        consumer.close()
    return sorted(found, key=lambda copy: copy[0])


def commands_of_workflow(
    settings: Settings, *, workflow_id: str
) -> list[tuple[int, dict[str, Any]]]:
    """Return (partition, record) of every control command of a workflow so far,
    oldest first."""
    consumer = assigned_consumer(settings, Topics(settings).name("control"))
    found: list[tuple[int, dict[str, Any]]] = []
    try:
        while (message := consumer.poll(1.0)) is not None:
            if message.error():
                continue
            record = CODEC.decode("control", message.value())
            if record["workflow_id"] == workflow_id:
                found.append((message.partition(), record))
    finally:
        consumer.close()
    return sorted(found, key=lambda copy: copy[1]["issued_at"])


class PreviewAnswerer:
    """Answers PREVIEW commands of one workflow (of every one with None) from
    chosen partitions.

    `matching` maps a partition to (count, example person keys); partitions not
    in it stay silent, as a partition whose matcher is down would.
    """

    def __init__(
        self,
        settings: Settings,
        workflow_id: str | None,
        matching: Mapping[int, tuple[int, list[str]]],
    ) -> None:
        topics = Topics(settings)
        self._consumer = assigned_consumer(settings, topics.name("control"))
        self._producer = Producer(settings.kafka.librdkafka_config())
        self._status_topic = topics.name("matcher-status")
        self._workflow_id = workflow_id
        self._matching = dict(matching)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.answered: list[str] = []

    def __enter__(self) -> PreviewAnswerer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()
        self._producer.flush(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._consumer.poll(0.1)
            if message is None or message.error():
                continue
            command = CODEC.decode("control", message.value())
            if command["kind"] != "PREVIEW":
                continue
            if self._workflow_id not in (None, command["workflow_id"]):
                continue
            self._answer(message.partition(), command)

    def _answer(self, partition: int, command: dict[str, Any]) -> None:
        if partition not in self._matching:
            return
        count, examples = self._matching[partition]
        workflow_id = command["workflow_id"]
        status = {
            "workflow_id": workflow_id,
            "partition": partition,
            "reported_at": datetime.now(UTC),
            "pending": 0,
            "held_by_account_cap": 0,
            "held_by_rep_cap": 0,
            "expired": 0,
            "last_run_at": None,
            "last_run_enrolled": 0,
            "preview": {
                "command_id": command["command_id"],
                "matching": count,
                "examples": examples[: command["limit"] or len(examples)],
            },
        }
        self._producer.produce(
            self._status_topic,
            CODEC.encode("matcher_status", status),
            key=f"{workflow_id}:{partition}".encode(),
        )
        self._producer.flush(10)
        self.answered.append(command["command_id"])
