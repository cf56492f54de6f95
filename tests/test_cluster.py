"""Fault tolerance on a real three-node cluster: a broker dies, nothing is lost."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource, ResourceType  # type: ignore[attr-defined]

from signalflow.kafka.admin import admin_client, delete_topics, ensure_topics
from signalflow.local import LocalKafka
from signalflow.settings import KafkaSettings, Settings
from signalflow.topics import Topics

pytestmark = pytest.mark.slow

MESSAGES_PER_PHASE = 2_000
_FLUSH_TIMEOUT_S = 120.0
_CONSUME_TIMEOUT_S = 60.0


def _replicated_settings(cluster: LocalKafka) -> Settings:
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=cluster.bootstrap),
        topic_prefix=f"f{uuid.uuid4().hex[:8]}.",
        default_partitions=3,
        replication_factor=3,
    )


def _produce(producer: Producer, topic: str, values: range, errors: list[str]) -> int:
    def on_delivery(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            errors.append(f"{message.value()!r}: {error}")

    for value in values:
        producer.produce(
            topic, key=str(value % 97), value=str(value), on_delivery=on_delivery
        )
        producer.poll(0)
    return producer.flush(_FLUSH_TIMEOUT_S)


def _consume_all(
    settings: Settings, topic: str, partitions: int, count: int
) -> list[int]:
    consumer = Consumer(
        {
            **settings.kafka.librdkafka_config(),
            "group.id": f"{settings.topic_prefix}reader",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    values: list[int] = []
    deadline = time.monotonic() + _CONSUME_TIMEOUT_S
    try:
        while len(values) < count and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=500, timeout=1.0):
                assert message.error() is None, message.error()
                values.append(int(message.value()))
    finally:
        consumer.close()
    return values


def test_replicated_topic_loses_nothing_when_a_broker_is_killed(
    cluster: LocalKafka,
) -> None:
    settings = _replicated_settings(cluster)
    ensure_topics(settings)
    topic = Topics(settings).name("signals")
    admin = admin_client(settings)
    described = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)])
    [configs] = [future.result(timeout=10) for future in described.values()]
    assert configs["min.insync.replicas"].value == "2"
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    assert all(len(p.replicas) == 3 for p in partitions.values())
    victim = partitions[0].leader

    producer = Producer(
        {
            **settings.kafka.librdkafka_config(),
            "enable.idempotence": True,
            "acks": "all",
        }
    )
    errors: list[str] = []
    try:
        before = _produce(producer, topic, range(MESSAGES_PER_PHASE), errors)
        cluster.kill_broker(victim)
        after = _produce(
            producer, topic, range(MESSAGES_PER_PHASE, 2 * MESSAGES_PER_PHASE), errors
        )

        assert (before, after, errors) == (0, 0, [])
        values = _consume_all(settings, topic, len(partitions), 2 * MESSAGES_PER_PHASE)
        assert sorted(values) == list(range(2 * MESSAGES_PER_PHASE))
        assert victim not in _alive_nodes(cluster)
    finally:
        delete_topics(settings)


def _alive_nodes(cluster: LocalKafka) -> set[int]:
    return {node.node_id for node in cluster.status().nodes if node.alive}
