"""The delay relays on the real broker: nothing early, nothing lost across a
restart, and one held record per partition at most."""

from __future__ import annotations

import asyncio
import random

from confluent_kafka import Consumer
from dispatcher_harness import now_ms

from services.dispatcher.delays import DelayWriter
from services.dispatcher.envelope import Envelopes
from services.dispatcher.relay import RelayService
from services.dispatcher.settings import DispatcherSettings
from signalflow.contracts import Codec
from signalflow.kafka.clients import make_producer
from signalflow.settings import Settings
from signalflow.topics import DELAY_TIERS, Topics

OWN = DispatcherSettings(relay_port=0)
TIERS = DELAY_TIERS[:2]  # 1s and 10s


def write_waits(
    settings: Settings, codec: Codec, waits_ms: dict[bytes, int]
) -> dict[bytes, int]:
    """Write each wait through the tiers to `runs`; return the due times."""
    topics = Topics(settings)
    producer = make_producer(settings)
    writer = DelayWriter(producer, topics, Envelopes(codec))
    dues = {}
    for key, wait in waits_ms.items():
        now = now_ms()
        dues[key] = now + wait
        writer.send_later(
            due_ms=dues[key],
            target_topic=topics.name("runs"),
            key=key,
            payload=b"payload-" + key,
            now_ms=now,
        )
    writer.release()
    assert producer.flush(30) == 0
    return dues


def target_consumer(settings: Settings) -> Consumer:
    consumer = Consumer(
        {
            **settings.kafka.librdkafka_config(),
            "group.id": f"{settings.topic_prefix}check",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([Topics(settings).name("runs")])
    return consumer


async def collect(
    consumer: Consumer, arrived: dict[bytes, tuple[int, bytes]], until: int, *, s: float
) -> None:
    """Read forwarded records into `arrived` (key -> (forwarded at, value))."""
    deadline = asyncio.get_running_loop().time() + s
    while len(arrived) < until and asyncio.get_running_loop().time() < deadline:
        for message in await asyncio.to_thread(consumer.consume, 500, 0.1):
            if message.error() is None:
                key = message.key() or b""
                if key in arrived:
                    arrived[key + b"#dup"] = (message.timestamp()[1], b"")
                else:
                    arrived[key] = (message.timestamp()[1], message.value() or b"")


async def test_waits_arrive_whole_and_never_early_across_a_relay_restart(
    settings: Settings, topics: Topics, codec: Codec
) -> None:
    rng = random.Random(4)
    waits = {f"w{n}".encode(): rng.randint(200, 13_000) for n in range(300)}
    consumer = target_consumer(settings)
    arrived: dict[bytes, tuple[int, bytes]] = {}

    async with RelayService(settings, TIERS, codec=codec, own=OWN) as relays:
        dues = write_waits(settings, codec, waits)
        await collect(consumer, arrived, len(waits), s=4)
        held = [len(relay.held) for relay in relays.relays]
    partitions = settings.default_partitions
    assert all(count <= partitions for count in held)
    # Stopped with waits pending in both tiers; a new relay picks them up.
    assert len(arrived) < len(waits)
    async with RelayService(settings, TIERS, codec=codec, own=OWN):
        await collect(consumer, arrived, len(waits), s=30)
    consumer.close()

    assert set(arrived) == set(waits)
    assert all(arrived[key][1] == b"payload-" + key for key in waits)
    early = [key for key in waits if arrived[key][0] < dues[key]]
    assert early == []


async def test_a_record_that_is_no_envelope_goes_to_dead_letters(
    settings: Settings, topics: Topics, codec: Codec
) -> None:
    producer = make_producer(settings)
    producer.produce(topics.delay(DELAY_TIERS[0]), b"junk", key=b"k", timestamp=1)
    dues = write_waits(settings, codec, {b"after-junk": 100})
    assert producer.flush(10) == 0
    consumer = target_consumer(settings)
    arrived: dict[bytes, tuple[int, bytes]] = {}

    async with RelayService(settings, TIERS[:1], codec=codec, own=OWN):
        await collect(consumer, arrived, 1, s=20)
    consumer.close()
    letters = Consumer(
        {
            **settings.kafka.librdkafka_config(),
            "group.id": f"{settings.topic_prefix}letters",
            "auto.offset.reset": "earliest",
        }
    )
    letters.subscribe([topics.name("dead-letters")])
    found = []
    for _ in range(50):
        found += [m for m in letters.consume(10, 0.2) if m.error() is None]
        if found:
            break
    letters.close()

    assert set(arrived) == {b"after-junk"}
    assert arrived[b"after-junk"][0] >= dues[b"after-junk"]
    [letter] = found
    record = codec.decode("dead_letter", letter.value() or b"")
    assert (record["value"], record["service"]) == (b"junk", "relay-1s")
