"""Our producers put a key on the partition faust's aiokafka would choose."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import Message

from signalflow.kafka.clients import make_producer, partition_for
from signalflow.settings import Settings
from signalflow.topics import Topics


def test_keys_land_where_aiokafka_puts_them(settings: Settings, topics: Topics) -> None:
    producer = make_producer(settings)
    landed: dict[bytes, int] = {}

    def record(error: object, message: Message) -> None:
        assert error is None
        landed[message.key()] = message.partition()

    keys = [f"acct-{index:05d}".encode() for index in range(60)]
    for key in keys:
        producer.produce(topics.name("signals"), b"", key=key, on_delivery=record)
    assert producer.flush(10) == 0

    partitions = list(range(settings.default_partitions))
    expected = {key: DefaultPartitioner()(key, partitions, partitions) for key in keys}
    assert landed == expected


def test_partition_for_agrees_with_the_partitioner() -> None:
    partitions = list(range(7))
    for index in range(200):
        key = f"acc-{index}".encode()
        assert partition_for(key, 7) == DefaultPartitioner()(key, partitions, partitions)
