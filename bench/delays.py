"""Delay relays on a real broker: precision, memory with pending waits, drain speed.

    python -m bench.delays [--waits 20000] [--max-wait-s 120] [--pending 100000]
                           [--backlog 200000]

In a fresh environment (topic prefix) on one broker, with every tier's relay
running as its own `signalflow run relay --tier ...` process:

1. **Precision.** `--waits` waits, due uniformly between 1 s and `--max-wait-s`
   from now (millisecond resolution), are written through the dispatcher's
   `DelayWriter`; a consumer of the target records when each was forwarded (the
   forwarded record's timestamp, set when the relay produced it) and received.
   `early` counts waits forwarded before their due time; `p99_late_ms` is the 99th
   percentile of forwarding time minus due time.
2. **Memory.** 1,000 waits of 30 minutes are written, and the resident memory of
   the relay processes is read once they settle; then the pending waits are
   brought to `--pending` and it is read again: `rss_ratio` is the second over the
   first.
3. **Drain.** The 1s relay is stopped, `--backlog` waits that are already due are
   written to its tier, and the raw passthrough (`bench.passthrough`, consume and
   produce of bytes) is measured on that backlog; then the relay is started and
   its throughput is measured from its first forwarded record to its last:
   `drain_ratio` is relay / passthrough.

The last line printed is one JSON object with those four figures (and a few more).
Settings come from the environment; without `KAFKA_BOOTSTRAP_SERVERS` the local
broker is started (or found) through `signalflow.local`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from rich.console import Console
from rich.progress import Progress

from bench.passthrough import bench_settings, measure_passthrough
from services.dispatcher.delays import DelayWriter
from services.dispatcher.envelope import Envelopes
from services.dispatcher.relay import wall_clock_ms
from signalflow.contracts import Codec
from signalflow.kafka.admin import delete_topics, ensure_topics
from signalflow.kafka.clients import make_producer
from signalflow.settings import Settings
from signalflow.topics import DELAY_TIERS, Topics

SIGNALFLOW = str(Path(sys.executable).with_name("signalflow"))
RELAY_GROUPS = {
    "1s": ["1s"],
    "10s": ["10s"],
    "1m": ["1m"],
    "rest": ["10m", "1h", "10h"],
}
PAYLOAD_BYTES = 1_500  # about a step command with its enrollment
TARGETS = {"early": 0, "p99_late_ms": 250, "rss_ratio": 1.2, "drain_ratio": 0.7}


@dataclass
class RelayProcess:
    """One `signalflow run relay` child for some tiers."""

    name: str
    tiers: list[str]
    settings: Settings
    logs: Path
    child: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.settings.kafka.bootstrap_servers,
            "SIGNALFLOW_TOPIC_PREFIX": self.settings.topic_prefix,
            "SIGNALFLOW_DISPATCHER_RELAY_PORT": "0",
        }
        arguments = [arg for tier in self.tiers for arg in ("--tier", tier)]
        with (self.logs / f"relay-{self.name}.log").open("ab") as log:
            self.child = subprocess.Popen(
                [SIGNALFLOW, "run", "relay", *arguments],
                env=env,
                stdout=log,
                stderr=log,
            )

    def wait_assigned(self, timeout_s: float = 120.0) -> None:
        """Wait until every tier's relay logged its partition assignment.

        Raises RuntimeError when the process exits or the time runs out.
        """
        log = self.logs / f"relay-{self.name}.log"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = log.read_text() if log.exists() else ""
            if all(f"relay-{tier} assigned" in text for tier in self.tiers):
                return
            if self.child is not None and self.child.poll() is not None:
                raise RuntimeError(f"relay {self.name!r} exited; see {log}")
            time.sleep(0.2)
        raise RuntimeError(f"relay {self.name!r} was not assigned in {timeout_s}s")

    def stop(self) -> None:
        if self.child is None or self.child.poll() is not None:
            return
        self.child.send_signal(signal.SIGTERM)
        try:
            self.child.wait(30)
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.wait(10)

    def rss_bytes(self) -> int:
        """Resident memory of the process, from /proc."""
        if self.child is None:
            return 0
        status = Path(f"/proc/{self.child.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS line for relay {self.name!r}")


@contextmanager
def relays(settings: Settings, logs: Path) -> Iterator[dict[str, RelayProcess]]:
    processes = {
        name: RelayProcess(name, tiers, settings, logs)
        for name, tiers in RELAY_GROUPS.items()
    }
    for process in processes.values():
        process.start()
    try:
        yield processes
    finally:
        for process in processes.values():
            process.stop()


class Arrivals:
    """Counts and times the records that reach one topic."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self._consumer = Consumer(
            {
                **settings.kafka.librdkafka_config(),
                "group.id": f"bench-arrivals-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 10,
            }
        )
        self._consumer.subscribe([topic])
        #: key -> (forwarded at, received at), epoch ms
        self.seen: dict[bytes, tuple[int, int]] = {}
        self.count = 0

    def poll(self, timeout_s: float = 0.02) -> None:
        for message in self._consumer.consume(2_000, timeout_s):
            if message.error() is not None:
                continue
            received = wall_clock_ms()
            self.count += 1
            self.seen.setdefault(
                message.key() or b"", (message.timestamp()[1], received)
            )

    def close(self) -> None:
        self._consumer.close()


def write_waits(
    writer: DelayWriter,
    producer: Producer,
    target: str,
    waits_ms: dict[bytes, int],
    *,
    payload: bytes,
    advance: Callable[[int], None],
) -> dict[bytes, int]:
    """Write one wait per key, of the length `waits_ms` says from the moment it is
    written; wait for the acks. Returns each key's due time (epoch ms)."""
    dues: dict[bytes, int] = {}
    for index, (key, wait_ms) in enumerate(waits_ms.items(), start=1):
        now = wall_clock_ms()
        dues[key] = now + wait_ms
        writer.send_later(
            due_ms=dues[key], target_topic=target, key=key, payload=payload, now_ms=now
        )
        if index % 1_000 == 0:
            writer.release()
            producer.poll(0)
            advance(index)
    writer.release()
    if producer.flush(120):
        raise RuntimeError("waits were not acknowledged within 120 s")
    advance(len(waits_ms))
    return dues


def measure_precision(
    settings: Settings, args: argparse.Namespace, progress: Progress
) -> dict[str, float]:
    topics = Topics(settings)
    target = topics.name("step-results")
    producer = make_producer(settings)
    writer = DelayWriter(producer, topics, Envelopes(Codec.load()))
    rng = random.Random(20)
    arrivals = Arrivals(settings, target)
    arrivals.poll(3.0)  # join the group before anything arrives
    waits = {
        f"wait-{n}".encode(): rng.randint(1_000, args.max_wait_s * 1_000)
        for n in range(args.waits)
    }
    writing = progress.add_task("writing waits", total=len(waits))
    dues = write_waits(
        writer,
        producer,
        target,
        waits,
        payload=b"p" * PAYLOAD_BYTES,
        advance=lambda done: progress.update(writing, completed=done),
    )
    waiting = progress.add_task("waits forwarded", total=len(dues))
    deadline = time.monotonic() + args.max_wait_s + 60
    while len(arrivals.seen) < len(dues) and time.monotonic() < deadline:
        arrivals.poll()
        progress.update(waiting, completed=len(arrivals.seen))
    arrivals.close()

    late = sorted(
        arrivals.seen[key][0] - due for key, due in dues.items() if key in arrivals.seen
    )
    received = sorted(
        arrivals.seen[key][1] - due for key, due in dues.items() if key in arrivals.seen
    )
    report_bands(waits, dues, arrivals, progress.console)
    return {
        "waits": len(dues),
        "forwarded": len(late),
        "early": sum(1 for ms in late if ms < 0),
        "p50_late_ms": _percentile(late, 0.50),
        "p99_late_ms": _percentile(late, 0.99),
        "max_late_ms": late[-1] if late else -1,
        "p99_received_late_ms": _percentile(received, 0.99),
    }


def report_bands(
    waits: dict[bytes, int],
    dues: dict[bytes, int],
    arrivals: Arrivals,
    console: Console,
) -> None:
    """Print lateness by wait length and by when the wait was due, to show where
    late waits come from."""
    start = min(due - waits[key] for key, due in dues.items())
    by_length: dict[str, list[int]] = {}
    by_due: dict[int, list[int]] = {}
    for key, due in dues.items():
        if key not in arrivals.seen:
            continue
        late = arrivals.seen[key][0] - due
        band = (
            "<10s" if waits[key] < 10_000 else "<60s" if waits[key] < 60_000 else "60s+"
        )
        by_length.setdefault(band, []).append(late)
        by_due.setdefault((due - start) // 10_000, []).append(late)
    for band, values in sorted(by_length.items()):
        values.sort()
        console.print(
            f"waits {band}: {len(values)}, p50 {_percentile(values, 0.5)} ms, "
            f"p99 {_percentile(values, 0.99)} ms"
        )
    for decade, values in sorted(by_due.items()):
        values.sort()
        console.print(
            f"due {decade * 10}-{decade * 10 + 10}s: p99 "
            f"{_percentile(values, 0.99)} ms, max {values[-1]} ms"
        )


def measure_memory(
    settings: Settings,
    args: argparse.Namespace,
    processes: dict[str, RelayProcess],
    progress: Progress,
) -> dict[str, float]:
    topics = Topics(settings)
    producer = make_producer(settings)
    writer = DelayWriter(producer, topics, Envelopes(Codec.load()))
    payload = b"m" * PAYLOAD_BYTES
    target = topics.name("step-results")
    task = progress.add_task("pending waits", total=args.pending)

    def settle_and_read() -> int:
        time.sleep(args.settle_s)
        return sum(process.rss_bytes() for process in processes.values())

    far = 30 * 60 * 1_000
    first = {f"pending-{n}".encode(): far + n for n in range(1_000)}
    write_waits(
        writer, producer, target, first, payload=payload, advance=lambda d: None
    )
    progress.update(task, completed=len(first))
    small = settle_and_read()

    rest = {f"pending-{n}".encode(): far + n for n in range(1_000, args.pending)}
    write_waits(
        writer,
        producer,
        target,
        rest,
        payload=payload,
        advance=lambda done: progress.update(task, completed=len(first) + done),
    )
    large = settle_and_read()
    return {
        "rss_1k_mb": round(small / 2**20, 1),
        "rss_many_mb": round(large / 2**20, 1),
        "rss_ratio": round(large / small, 3),
    }


def measure_drain(
    settings: Settings,
    args: argparse.Namespace,
    processes: dict[str, RelayProcess],
    progress: Progress,
) -> dict[str, float]:
    topics = Topics(settings)
    tier = DELAY_TIERS[0]
    relay = processes["1s"]
    relay.stop()
    drained_to = topics.name("runs")
    producer = make_producer(settings)
    writer = DelayWriter(producer, topics, Envelopes(Codec.load()))
    past = wall_clock_ms() - 60_000
    backlog = {f"due-{n}".encode(): past + n % 500 for n in range(args.backlog)}
    task = progress.add_task("due backlog", total=len(backlog))
    # Written straight to the 1s tier, as waits that left it a minute ago.
    value_of = Envelopes(Codec.load())
    for index, (key, due) in enumerate(backlog.items(), start=1):
        value, headers = value_of.wrap(
            due_ms=due,
            target_topic=drained_to,
            key=key,
            payload=b"d" * 200,
            now_ms=past,
        )
        writer.produce(
            topics.delay(tier),
            value,
            key=key,
            headers=headers,
            timestamp=due - 1_000,
        )
        if index % 10_000 == 0:
            producer.poll(0)
            progress.update(task, completed=index)
    producer.flush(120)
    progress.update(task, completed=len(backlog))

    raw = measure_passthrough(
        settings,
        source_topic=topics.delay(tier),
        messages=len(backlog),
        progress=progress,
    )

    # While the relay drains, only the watermarks of the target are watched, so
    # nothing but the relay competes for the CPU; the forwarded records are read
    # afterwards for their timestamps.
    watcher = Consumer(
        {
            **settings.kafka.librdkafka_config(),
            "group.id": f"bench-watch-{uuid.uuid4().hex[:8]}",
        }
    )
    relay.start()
    draining = progress.add_task("relay draining", total=len(backlog))
    deadline = time.monotonic() + 300
    done = 0
    while done < len(backlog) and time.monotonic() < deadline:
        time.sleep(0.25)
        done = _records_in(watcher, drained_to)
        progress.update(draining, completed=done)
    watcher.close()
    arrivals = Arrivals(settings, drained_to)
    while arrivals.count < done:
        arrivals.poll(0.5)
    arrivals.close()
    stamps = sorted(forwarded for forwarded, _ in arrivals.seen.values())
    seconds = max(stamps[-1] - stamps[0], 1) / 1000
    relay_rate = len(stamps) / seconds
    return {
        "raw_msgs_per_s": round(raw.msgs_per_s),
        "relay_msgs_per_s": round(relay_rate),
        "drain_ratio": round(relay_rate / raw.msgs_per_s, 3),
    }


def _records_in(client: Consumer, topic: str) -> int:
    """How many records a topic holds, from its partitions' watermarks."""
    metadata = client.list_topics(topic, timeout=10)
    total = 0
    for partition in metadata.topics[topic].partitions:
        low, high = client.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=10, cached=False
        )
        total += high - low
    return total


def _percentile(values: list[int], share: float) -> int:
    if not values:
        return -1
    return values[min(len(values) - 1, int(len(values) * share))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waits", type=int, default=20_000)
    parser.add_argument("--max-wait-s", type=int, default=120)
    parser.add_argument("--pending", type=int, default=100_000)
    parser.add_argument("--backlog", type=int, default=200_000)
    parser.add_argument("--settle-s", type=float, default=8.0)
    args = parser.parse_args()

    console = Console(stderr=True)
    base = bench_settings()
    settings = base.model_copy(update={"topic_prefix": f"bench{uuid.uuid4().hex[:6]}."})
    ensure_topics(settings)
    results: dict[str, float] = {}
    try:
        with (
            tempfile.TemporaryDirectory() as logs,
            Progress(console=console) as progress,
            relays(settings, Path(logs)) as processes,
        ):
            for process in processes.values():
                process.wait_assigned()
            results.update(measure_precision(settings, args, progress))
            results.update(measure_memory(settings, args, processes, progress))
            results.update(measure_drain(settings, args, processes, progress))
    finally:
        delete_topics(settings)
    for name, target in TARGETS.items():
        good = (
            results[name] <= target
            if name != "drain_ratio"
            else results[name] >= target
        )
        verdict = "[green]meets[/green]" if good else "[red]misses[/red]"
        console.print(f"{name} = {results[name]} {verdict} the target {target}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
