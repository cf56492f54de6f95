"""Passthrough throughput on a real broker: raw bytes, then decoded and re-encoded.

    python -m bench.passthrough [--messages 500000] [--rounds 2]

Pre-produces signals to a fresh topic, then measures (a) a confluent-kafka
consume-then-produce loop forwarding raw bytes and (b) the same loop decoding and
re-encoding every record with the codec. Both read the same topic and write to a
fresh one. The last line printed is one JSON object:
`{"raw_msgs_per_s": .., "codec_msgs_per_s": .., "ratio": codec/raw}`.

Settings come from the environment; without `KAFKA_BOOTSTRAP_SERVERS` the local
broker is started (or found) through `signalflow.local`. Other benchmarks import
`measure_passthrough` to measure the raw baseline in their own run.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    Message,
    Producer,
    TopicPartition,
)

# confluent-kafka re-exports these without declaring them; importing them is intended.
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from rich.console import Console
from rich.progress import Progress

from signalflow.contracts import Codec, examples
from signalflow.kafka.clients import make_producer
from signalflow.local import ensure_kafka
from signalflow.settings import KafkaSettings, Settings

logger = logging.getLogger(__name__)

Transform = Callable[[bytes], bytes]
CONSUME_BATCH = 1000
TARGET_RATIO = 0.65
IDLE_LIMIT_S = 60.0


class _Tracker:
    """Advances one progress bar, or does nothing without a Progress."""

    def __init__(self, progress: Progress | None, label: str, total: int) -> None:
        self._progress = progress
        self._task = progress.add_task(label, total=total) if progress else None

    def reached(self, done: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=done)


@dataclass(frozen=True)
class PassthroughResult:
    """How many messages one passthrough forwarded, and in how long."""

    messages: int
    seconds: float

    @property
    def msgs_per_s(self) -> float:
        return self.messages / self.seconds


def bench_settings() -> Settings:
    """Settings from the environment, pointed at a running broker.

    Starts the local broker when the environment names none.
    """
    settings = Settings()
    bootstrap = ensure_kafka(settings)
    kafka = KafkaSettings(
        **{**settings.kafka.model_dump(), "bootstrap_servers": bootstrap}
    )
    return settings.model_copy(update={"kafka": kafka})


def create_topic(settings: Settings, label: str, *, partitions: int) -> str:
    """Create a fresh, uniquely named topic under the settings' prefix."""
    name = f"{settings.topic_prefix}bench.{label}.{uuid.uuid4().hex[:8]}"
    admin = AdminClient(settings.kafka.librdkafka_config())
    topic = NewTopic(name, partitions, settings.replication_factor)
    for future in admin.create_topics([topic]).values():
        future.result(timeout=60)
    return name


def delete_topics(settings: Settings, *names: str) -> None:
    """Delete benchmark topics, so repeated runs do not fill the broker's disk."""
    admin = AdminClient(settings.kafka.librdkafka_config())
    for future in admin.delete_topics(list(names)).values():
        future.result(timeout=60)


def produce_signals(
    settings: Settings,
    topic: str,
    count: int,
    *,
    codec: Codec,
    progress: Progress | None = None,
) -> None:
    """Produce `count` encoded signals keyed by account; wait until all are acked."""
    producer = make_producer(settings, linger_ms=20)
    tracker = _Tracker(progress, "pre-producing signals", count)
    for index in range(count):
        record = examples.signal(index)
        value = codec.encode("signal", record)
        _produce(producer, topic, value, record["account_key"].encode())
        if index % 10_000 == 0:
            tracker.reached(index)
    remaining = producer.flush(120)
    if remaining:
        raise RuntimeError(f"{remaining} signals were not acknowledged in 120 s")
    tracker.reached(count)


def measure_passthrough(
    settings: Settings,
    *,
    source_topic: str,
    messages: int,
    transform: Transform | None = None,
    label: str = "raw",
    progress: Progress | None = None,
) -> PassthroughResult:
    """Forward `messages` records from `source_topic` to a fresh topic and time it.

    Reads from the beginning of every partition (assigned, so no group join is
    timed), consumes in batches of 1000 and produces each record with the
    service producer settings, through `transform` when given. The clock starts
    at the first batch and stops when the last produced record is acknowledged.
    Raises RuntimeError when the source runs dry for 60 s before `messages`.
    """
    sink_topic = create_topic(
        settings, f"sink-{label}", partitions=settings.default_partitions
    )
    consumer = _assigned_consumer(settings, source_topic)
    producer = make_producer(settings)
    tracker = _Tracker(progress, f"passthrough ({label})", messages)
    forwarded = 0
    started: float | None = None
    last_batch_at = time.monotonic()
    try:
        while forwarded < messages:
            batch = consumer.consume(num_messages=CONSUME_BATCH, timeout=1.0)
            if not batch:
                if time.monotonic() - last_batch_at > IDLE_LIMIT_S:
                    raise RuntimeError(
                        f"{source_topic!r} ran dry after {forwarded} of {messages}"
                    )
                continue
            last_batch_at = time.monotonic()
            if started is None:
                started = time.perf_counter()
            forwarded += _forward(batch, producer, sink_topic, transform)
            producer.poll(0)
            tracker.reached(forwarded)
        remaining = producer.flush(120)
        elapsed = time.perf_counter() - (started or time.perf_counter())
    finally:
        consumer.close()
    if remaining:
        raise RuntimeError(f"{remaining} forwarded records were not acknowledged")
    delete_topics(settings, sink_topic)
    return PassthroughResult(forwarded, elapsed)


def _forward(
    batch: list[Message], producer: Producer, topic: str, transform: Transform | None
) -> int:
    """Produce every good message of a batch to `topic`; return how many."""
    forwarded = 0
    for message in batch:
        value = message.value()
        if message.error() is not None or value is None:
            continue
        if transform is not None:
            value = transform(value)
        _produce(producer, topic, value, message.key())
        forwarded += 1
    return forwarded


def codec_transform(codec: Codec, schema: str = "signal") -> Transform:
    """Decode each value with the codec and encode the record again."""

    def reencode(value: bytes) -> bytes:
        return codec.encode(schema, codec.decode(schema, value))

    return reencode


def _assigned_consumer(settings: Settings, topic: str) -> Consumer:
    consumer = Consumer(
        {
            **settings.kafka.librdkafka_config(),
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    metadata = consumer.list_topics(topic, timeout=30)
    partitions = sorted(metadata.topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    return consumer


def _produce(producer: Producer, topic: str, value: bytes, key: bytes | None) -> None:
    while True:
        try:
            producer.produce(topic, value=value, key=key)
            return
        except BufferError:
            producer.poll(0.05)


def compare(
    settings: Settings, *, messages: int, rounds: int, console: Console
) -> tuple[list[PassthroughResult], list[PassthroughResult]]:
    """Pre-produce signals, then alternate raw and codec passthroughs `rounds` times.

    Returns (raw results, codec results), one per round; deletes its topics.
    """
    codec = Codec.load()
    source = create_topic(settings, "signals", partitions=settings.default_partitions)
    raw: list[PassthroughResult] = []
    coded: list[PassthroughResult] = []
    try:
        with Progress(console=console) as progress:
            produce_signals(settings, source, messages, codec=codec, progress=progress)
            measure = partial(
                measure_passthrough,
                settings,
                source_topic=source,
                messages=messages,
                progress=progress,
            )
            for _ in range(rounds):
                raw.append(measure())
                coded.append(measure(transform=codec_transform(codec), label="codec"))
    finally:
        delete_topics(settings, source)
    return raw, coded


def report(
    raw: list[PassthroughResult], coded: list[PassthroughResult], console: Console
) -> dict[str, float]:
    """Print each round and the verdict; return the best of each and their ratio."""
    best_raw = max(result.msgs_per_s for result in raw)
    best_codec = max(result.msgs_per_s for result in coded)
    ratio = best_codec / best_raw
    for name, results in (("raw", raw), ("codec", coded)):
        rates = ", ".join(f"{result.msgs_per_s:,.0f}" for result in results)
        console.print(f"{name:>5} passthrough msgs/s per round: {rates}")
    verdict = "[green]meets[/green]" if ratio >= TARGET_RATIO else "[red]misses[/red]"
    console.print(f"ratio {ratio:.3f} {verdict} the target {TARGET_RATIO}")
    return {
        "raw_msgs_per_s": round(best_raw),
        "codec_msgs_per_s": round(best_codec),
        "ratio": round(ratio, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500_000)
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="alternate raw and codec this many times; the best of each counts",
    )
    args = parser.parse_args()

    console = Console(stderr=True)
    settings = bench_settings()
    raw, coded = compare(
        settings, messages=args.messages, rounds=args.rounds, console=console
    )
    print(json.dumps(report(raw, coded, console)))


if __name__ == "__main__":
    main()
