"""Dead letters: input a service cannot process, kept with the reason.

Nothing is dropped silently. The dead letter wraps the original bytes in the
`dead_letter` schema and repeats the essentials as headers (source topic, error,
service), so operators can inspect and replay them with any Kafka tool.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

from confluent_kafka import Message, Producer

from signalflow.kafka.stream import position
from signalflow.topics import Topics

log = logging.getLogger(__name__)


class Encoder(Protocol):
    def encode(self, schema: str, record: dict[str, Any]) -> bytes: ...


class DeadLetters:
    """Sends records that could not be processed to the `dead-letters` topic."""

    def __init__(
        self, producer: Producer, topics: Topics, codec: Encoder, *, service: str
    ) -> None:
        self._producer = producer
        self._topic = topics.name("dead-letters")
        self._codec = codec
        self._service = service
        self.sent = 0

    def send(
        self, message: Message, error: str, *, history: Sequence[str] = ()
    ) -> None:
        """Produce a dead letter for `message` (key kept) saying why it failed.

        The caller's flush before committing the source offset makes it durable.
        """
        topic, partition, offset = position(message)
        record = {
            "source_topic": topic,
            "partition": partition,
            "offset": offset,
            "key": message.key(),
            "value": message.value() or b"",
            "error": error,
            "service": self._service,
            "failed_at": int(time.time() * 1000),
            "history": list(history),
        }
        headers: list[tuple[str, str | bytes | None]] = [
            ("source_topic", topic.encode()),
            ("error", error.encode()[:1000]),
            ("service", self._service.encode()),
        ]
        self._producer.produce(
            self._topic,
            self._codec.encode("dead_letter", record),
            key=message.key(),
            headers=headers,
        )
        self.sent += 1
        log.error("dead-lettered %s[%d]@%d: %s", topic, partition, offset, error)
