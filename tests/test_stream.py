"""A BatchStream commits a batch only once everything it produced has landed."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

import pytest
from confluent_kafka import KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from signalflow.kafka.clients import (
    DeliveryReports,
    make_consumer,
    make_producer,
)
from signalflow.kafka.stream import BatchStream
from signalflow.settings import Settings
from signalflow.topics import Topics


def committed(settings: Settings, group: str, topic: str) -> list[int]:
    consumer = make_consumer(settings, group)
    try:
        partitions = [TopicPartition(topic, p) for p in range(3)]
        return [tp.offset for tp in consumer.committed(partitions, timeout=10)]
    finally:
        consumer.close()


def small_topic(settings: Settings) -> str:
    """A topic whose brokers refuse any record over one kilobyte."""
    name = settings.topic_prefix + "small-records"
    admin = AdminClient(settings.kafka.librdkafka_config())
    topic = NewTopic(name, 1, 1, config={"max.message.bytes": "1024"})
    admin.create_topics([topic])[name].result(timeout=30)
    return name


async def run_stream(
    settings: Settings, topics: Topics, group: str, target: str, size: int
) -> BatchStream:
    reports = DeliveryReports()
    producer = make_producer(settings, reports=reports, linger_ms=0)

    async def forward(batch: Sequence[Message]) -> None:
        for _ in batch:
            producer.produce(target, os.urandom(size))
        stream.stop()

    stream = BatchStream(
        make_consumer(settings, group),
        [topics.name("signals")],
        forward,
        producer=producer,
        reports=reports,
    )
    await asyncio.wait_for(stream.run(), timeout=60)
    return stream


async def test_a_refused_record_fails_the_batch_and_commits_nothing(
    settings: Settings, topics: Topics
) -> None:
    target = small_topic(settings)
    source = make_producer(settings)
    source.produce(topics.name("signals"), b"input", key=b"acct-1")
    assert source.flush(10) == 0

    with pytest.raises(KafkaException, match="MSG_SIZE_TOO_LARGE"):
        await run_stream(settings, topics, "refused", target, size=5000)

    assert committed(settings, "refused", topics.name("signals")) == [-1001] * 3


async def test_a_delivered_batch_is_committed(
    settings: Settings, topics: Topics
) -> None:
    target = small_topic(settings)
    source = make_producer(settings)
    source.produce(topics.name("signals"), b"input", key=b"acct-1")
    assert source.flush(10) == 0

    stream = await run_stream(settings, topics, "delivered", target, size=10)

    assert stream.records_done == 1
    assert (
        sum(
            max(offset, 0)
            for offset in committed(settings, "delivered", topics.name("signals"))
        )
        == 1
    )
