"""Avro signals through a real broker come back byte for byte and decode equal."""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from signalflow.contracts import Codec, examples
from signalflow.kafka.clients import make_producer
from signalflow.settings import Settings
from signalflow.topics import Topics

SIGNALS = 10_000


def read_partitions_from_start(settings: Settings, topic: str, count: int) -> list[Any]:
    """Read `count` messages from the beginning of every partition, or fail in 60 s."""
    consumer = Consumer(
        {
            **settings.kafka.librdkafka_config(),
            "group.id": f"test-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    messages: list[Any] = []
    deadline = time.monotonic() + 60
    try:
        while len(messages) < count and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=1000, timeout=1.0):
                assert message.error() is None, message.error()
                messages.append(message)
    finally:
        consumer.close()
    return messages


def test_ten_thousand_signals_come_back_byte_exact_and_equal(
    settings: Settings, topics: Topics
) -> None:
    codec = Codec.load()
    old_writer = codec.pinned({"signal": 1})
    topic = topics.name("signals")
    sent: dict[str, tuple[bytes, bytes, dict[str, Any]]] = {}
    producer = make_producer(settings)

    for index in range(SIGNALS):
        record = examples.signal(index)
        # Every tenth signal comes from an integrator still writing version 1.
        if index % 10 == 0:
            del record["source_url"]
            value = old_writer.encode("signal", record)
            record = {**record, "source_url": None}
        else:
            value = codec.encode("signal", record)
        key = record["account_key"].encode()
        producer.produce(topic, value=value, key=key)
        sent[record["signal_id"]] = (key, value, record)
        producer.poll(0)
    assert producer.flush(60) == 0

    received = read_partitions_from_start(settings, topic, SIGNALS)

    assert len(received) == SIGNALS
    for message in received:
        decoded = codec.decode("signal", message.value())
        key, value, record = sent.pop(decoded["signal_id"])
        assert message.key() == key
        assert message.value() == value
        assert decoded == record
    assert sent == {}
