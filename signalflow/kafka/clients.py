"""Configuration of confluent-kafka producers and consumers.

Every producer is idempotent with `acks=all`. Every consumer stores an offset only
after the work for its record is finished (`enable.auto.offset.store=false`); the
background auto-commit then commits only those stored offsets, and a revoked
partition commits what it stored before it goes.
"""

from __future__ import annotations

from typing import Any

from aiokafka.partitioner import murmur2
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer

from signalflow.settings import Settings

PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    # The Java client's and faust's partitioner: a key lands on the same partition
    # whichever client wrote it, which co-partitioning by account depends on.
    "partitioner": "murmur2_random",
    "acks": "all",
    "linger.ms": 5,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 500_000,
}

CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable.auto.commit": True,
    "enable.auto.offset.store": False,
    "auto.commit.interval.ms": 1000,
    "auto.offset.reset": "earliest",
    "partition.assignment.strategy": "cooperative-sticky",
    "session.timeout.ms": 10_000,
    "heartbeat.interval.ms": 1_000,
}


def partition_for(key: bytes, partitions: int) -> int:
    """The partition a record with `key` lands on among `partitions`, as every
    client here places it (murmur2, like the Java client)."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Return a producer configuration: connection, safe defaults, then overrides.

    Overrides use librdkafka's dotted names with `_` for `.`, e.g. `linger_ms=0`.
    """
    return {
        **settings.kafka.librdkafka_config(),
        **PRODUCER_DEFAULTS,
        **_dotted(overrides),
    }


def consumer_config(
    settings: Settings, group_id: str, **overrides: Any
) -> dict[str, Any]:
    """Return a consumer configuration for `group_id` committing finished work only."""
    return {
        **settings.kafka.librdkafka_config(),
        **CONSUMER_DEFAULTS,
        "group.id": group_id,
        **_dotted(overrides),
    }


class DeliveryReports:
    """Collects the records a producer's brokers refused, for the next check.

    A flush only says nothing is in flight any more; whether each record landed is
    in its delivery report. `raise_if_refused()` after a flush turns a refusal into
    an error, so the consumed batch that produced it is not committed.
    """

    def __init__(self) -> None:
        self._refused: list[KafkaError] = []

    def on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._refused.append(error)

    def raise_if_refused(self) -> None:
        """Raise KafkaException naming the first refusal since the last check."""
        if not self._refused:
            return
        first, count = self._refused[0], len(self._refused)
        self._refused.clear()
        raise KafkaException(first) from RuntimeError(
            f"the brokers refused {count} produced records; the batch that "
            "produced them is not committed"
        )


def make_producer(
    settings: Settings, *, reports: DeliveryReports | None = None, **overrides: Any
) -> Producer:
    """Create an idempotent, acks=all producer, reporting refusals to `reports`."""
    config = producer_config(settings, **overrides)
    if reports is not None:
        config["on_delivery"] = reports.on_delivery
    return Producer(config)


def make_consumer(settings: Settings, group_id: str, **overrides: Any) -> Consumer:
    """Create a consumer in `group_id` that commits only stored offsets."""
    return Consumer(consumer_config(settings, group_id, **overrides))


def group_id(settings: Settings, service: str) -> str:
    """Return the consumer group of a service, prefixed like the topics."""
    return f"{settings.topic_prefix}signalflow.{service}"


def _dotted(overrides: dict[str, Any]) -> dict[str, Any]:
    return {key.replace("_", "."): value for key, value in overrides.items()}
