"""Matcher throughput against the raw passthrough, at 1,000 and 10,000 audiences.

    python -m bench.matcher [--people 100000] [--accounts 10000] [--signals 200000]

For each audience count, in a fresh environment (topic prefix) on the same broker:
saves the workflows, starts `signalflow run matcher`, activates them, loads the
people and account profiles, then publishes the signals and times the matcher
from its first signal to its last, enrollments acknowledged. The raw passthrough
(`bench.passthrough.measure_passthrough`, confluent-kafka forwarding bytes) is
measured on the same signals in the same run, and so is a faust agent forwarding
the same bytes (faust's own cost). The last line printed is one JSON object:
`ratio_1k`, `ratio_10k` (matcher / raw passthrough), `scaling` (signals/s at 10k
audiences / at 1k) and `faust_overhead_ratio` (faust passthrough / raw).

Audiences have a realistic shape: each requires one or two signals (from 40
types, company and person) and adds one to three conditions on email, last
activity or profile fields, so most of them ignore any given event.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from rich.console import Console

from bench.passthrough import bench_settings, measure_passthrough
from signalflow.contracts import Codec
from signalflow.definitions.records import definition_key, to_record
from signalflow.kafka.admin import delete_topics, ensure_topics
from signalflow.local import free_port_block
from signalflow.settings import Settings
from signalflow.topics import Topics
from signalflow.workflow import Audience, Workflow

COMPANY_TYPES = [
    "funding",
    "hiring_surge",
    "new_tech",
    "acquisition",
    "leadership_change",
    "expansion",
    "website_visit",
    "earnings",
] + [f"intent_topic_{index:02d}" for index in range(20)]
PERSON_TYPES = [
    "job_change",
    "new_hire",
    "promotion",
    "multi_thread",
    "past_champion",
    "past_customer",
    "engagement",
    "event_attendee",
    "webinar",
    "content_download",
    "review_written",
    "community_post",
]
TITLES = [
    "VP Sales",
    "CTO",
    "Engineer",
    "CFO",
    "Head of Marketing",
    "SDR",
    "Director IT",
    "CEO",
    "Analyst",
    "Product Manager",
]
DEPARTMENTS = ["sales", "engineering", "finance", "marketing", "it", "hr", "ops"]
INDUSTRIES = [
    "software",
    "retail",
    "banking",
    "health",
    "media",
    "energy",
    "logistics",
    "education",
    "insurance",
    "telecom",
    "travel",
    "food",
]
COUNTRIES = ["us", "de", "fr", "uk", "jp", "br", "in", "ca", "au", "es"]
OWNERS = [f"rep-{index}" for index in range(50)]
STEPS = [{"kind": "delay", "params": {"minutes": 5}}]
READY_TIMEOUT_S = 180.0
console = Console(stderr=True)


@dataclass(frozen=True)
class Scale:
    people: int
    accounts: int
    signals: int


# --- data ------------------------------------------------------------------------


def audience_filter(rng: random.Random) -> dict[str, Any]:
    """One to two signal predicates and one to three other conditions."""
    parts: list[dict[str, Any]] = []
    if rng.random() < 0.7:
        parts.append(
            {
                "kind": "person_signal",
                "types": rng.sample(PERSON_TYPES, rng.randint(1, 2)),
                **({"within_days": rng.choice([30, 90])} if rng.random() < 0.5 else {}),
            }
        )
    if not parts or rng.random() < 0.5:
        parts.append(
            {
                "kind": "company_signal",
                "types": rng.sample(COMPANY_TYPES, rng.randint(1, 2)),
                **({"within_days": rng.choice([30, 90])} if rng.random() < 0.5 else {}),
            }
        )
    conditions = [
        lambda: {"kind": "has_email", "value": True},
        lambda: {
            "kind": "last_activity",
            "condition": "before",
            "months": 6,
            "or_empty": True,
        },
        lambda: {
            "kind": "compare",
            "object": "person",
            "field": "title",
            "op": "contains",
            "value": rng.choice(["VP", "Director", "Head", "C"]),
        },
        lambda: {
            "kind": "compare",
            "object": "person",
            "field": "department",
            "op": "in",
            "value": rng.sample(DEPARTMENTS, 2),
        },
        lambda: {
            "kind": "compare",
            "object": "account",
            "field": "industry",
            "op": "eq",
            "value": rng.choice(INDUSTRIES),
        },
        lambda: {
            "kind": "compare",
            "object": "account",
            "field": "employees",
            "op": "gt",
            "value": rng.choice([50, 200, 1000]),
        },
        lambda: {
            "kind": "compare",
            "object": "account",
            "field": "country",
            "op": "in",
            "value": rng.sample(COUNTRIES, 3),
        },
    ]
    for make in rng.sample(conditions, rng.randint(1, 3)):
        parts.append(make())
    return {"kind": "all", "of": parts}


def publish_definitions(settings: Settings, codec: Codec, count: int) -> list[str]:
    """Write `count` audiences and active workflows (version 1) to the log."""
    rng = random.Random(7)
    producer = Producer(settings.kafka.librdkafka_config())
    topic = Topics(settings).name("workflows")
    ids = []
    now = datetime.now(UTC)
    for index in range(count):
        audience = Audience.model_validate(
            {"id": f"aud-{index}", "name": f"a{index}", "filter": audience_filter(rng)}
        )
        workflow = Workflow.model_validate(
            {
                "id": f"wf-{index}",
                "name": f"w{index}",
                "audience_id": audience.id,
                "steps": STEPS,
                "status": "active",
                "limits": {"max_per_account": 5} if index % 4 == 0 else {},
            }
        )
        for definition in (audience, workflow):
            record = to_record(definition, version=1, deleted=False, saved_at=now)
            producer.produce(
                topic,
                codec.encode("definition", record),
                key=definition_key(definition.id, 1),
            )
            producer.poll(0)
        ids.append(workflow.id)
    producer.flush(120)
    return ids


def murmur_producer(settings: Settings) -> Producer:
    return Producer(
        {
            **settings.kafka.librdkafka_config(),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 20,
            "partitioner": "murmur2_random",
            "queue.buffering.max.messages": 500_000,
        }
    )


def activate(settings: Settings, codec: Codec, workflow_ids: list[str]) -> None:
    producer = murmur_producer(settings)
    topic = Topics(settings).name("control")
    now = datetime.now(UTC)
    for workflow_id in workflow_ids:
        record = {
            "command_id": f"act-{workflow_id}",
            "kind": "ACTIVATE",
            "workflow_id": workflow_id,
            "workflow_version": 1,
            "execution_timing": "FUTURE_ONLY",
            "limit": None,
            "issued_at": now,
            "partition_count": settings.default_partitions,
        }
        value = codec.encode("control", record)
        for partition in range(settings.default_partitions):
            producer.produce(
                topic, value, key=workflow_id.encode(), partition=partition
            )
        producer.poll(0)
    producer.flush(120)


def publish_profiles(settings: Settings, codec: Codec, scale: Scale) -> int:
    rng = random.Random(11)
    producer = murmur_producer(settings)
    topic = Topics(settings).name("profiles")
    now = datetime.now(UTC)
    for index in range(scale.accounts):
        key = f"acc-{index}"
        record = profile(
            key,
            "ACCOUNT",
            key,
            now,
            owner=rng.choice(OWNERS),
            fields={
                "industry": rng.choice(INDUSTRIES),
                "employees": rng.randint(5, 5000),
                "country": rng.choice(COUNTRIES),
            },
        )
        producer.produce(topic, codec.encode("profile", record), key=key.encode())
        producer.poll(0)
    for index in range(scale.people):
        key = f"p-{index}"
        activity = (
            None if rng.random() < 0.4 else now - timedelta(days=rng.randint(1, 400))
        )
        record = profile(
            key,
            "PERSON",
            f"acc-{index % scale.accounts}",
            now,
            email=f"{key}@x.io" if rng.random() < 0.8 else None,
            owner=rng.choice(OWNERS),
            last_activity=activity,
            fields={"title": rng.choice(TITLES), "department": rng.choice(DEPARTMENTS)},
        )
        producer.produce(topic, codec.encode("profile", record), key=key.encode())
        producer.poll(0)
    producer.flush(120)
    return scale.accounts + scale.people


def profile(
    key: str,
    kind: str,
    account: str,
    now: datetime,
    *,
    email: str | None = None,
    owner: str | None = None,
    last_activity: datetime | None = None,
    fields: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "key": key,
        "kind": kind,
        "account_key": account,
        "updated_at": now,
        "deleted": False,
        "email": email,
        "owner": owner,
        "past_owners": [],
        "last_activity_at": last_activity,
        "fields": fields or {},
    }


def publish_signals(settings: Settings, codec: Codec, scale: Scale) -> None:
    rng = random.Random(13)
    producer = murmur_producer(settings)
    topic = Topics(settings).name("signals")
    now = datetime.now(UTC)
    for index in range(scale.signals):
        person_index = rng.randrange(scale.people)
        account = f"acc-{person_index % scale.accounts}"
        company = rng.random() < 0.4
        record = {
            "signal_id": f"s-{index}",
            "type": rng.choice(COMPANY_TYPES if company else PERSON_TYPES),
            "scope": "COMPANY" if company else "PERSON",
            "account_key": account,
            "person_key": None if company else f"p-{person_index}",
            "occurred_at": now - timedelta(days=rng.randint(0, 60)),
            "source": "bench",
            "attributes": {},
        }
        producer.produce(topic, codec.encode("signal", record), key=account.encode())
        producer.poll(0)
    producer.flush(120)


# --- the matcher process ---------------------------------------------------------


class Replica:
    """`signalflow run matcher` in a subprocess, watched through /health."""

    def __init__(self, settings: Settings, data_dir: Path) -> None:
        self.port = free_port_block(1)
        env = dict(os.environ)
        env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
                "REDIS_URL": settings.redis.url,
                "SIGNALFLOW_TOPIC_PREFIX": settings.topic_prefix,
                "SIGNALFLOW_DEFAULT_PARTITIONS": str(settings.default_partitions),
                "SIGNALFLOW_LOG_LEVEL": "WARNING",
                "SIGNALFLOW_MATCHER_PORT": str(self.port),
                "SIGNALFLOW_MATCHER_DATA_DIR": str(data_dir),
                "SIGNALFLOW_MATCHER_TICK_INTERVAL_S": "5",
            }
        )
        self.log_path = data_dir.with_suffix(".log")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).parent / "signalflow"), "run", "matcher"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def health(self) -> dict[str, Any]:
        if self.process.poll() is not None:
            raise RuntimeError(f"the matcher exited; see {self.log_path}")
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}/health", timeout=5
            ) as response:
                report: dict[str, Any] = json.loads(response.read())
                return report
        except OSError:
            return {}

    def wait(self, done: int, *, timeout_s: float, label: str) -> dict[str, Any]:
        """Wait until /health reports `done` records processed."""
        deadline = time.monotonic() + timeout_s
        report: dict[str, Any] = {}
        while time.monotonic() < deadline:
            report = self.health()
            if report.get("records_done", 0) >= done:
                return report
            time.sleep(0.2)
        raise TimeoutError(f"{label}: matcher at {report} of {done}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()


def measure_matcher(
    base: Settings, codec: Codec, scale: Scale, audiences: int, workdir: Path
) -> tuple[float, str, int]:
    """Signals per second through the matcher; returns it, the signals topic and
    the enrollments sent."""
    settings = base.model_copy(update={"topic_prefix": f"bm{uuid.uuid4().hex[:6]}."})
    ensure_topics(settings)
    console.log(f"{audiences} audiences under {settings.topic_prefix}")
    workflow_ids = publish_definitions(settings, codec, audiences)
    replica = Replica(settings, workdir / settings.topic_prefix.rstrip("."))
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while len(replica.health().get("partitions", [])) < settings.default_partitions:
            if time.monotonic() > deadline:
                raise TimeoutError("the matcher did not take up its partitions")
            time.sleep(0.5)
        activate(settings, codec, workflow_ids)
        commands = audiences * settings.default_partitions
        report = replica.wait(commands, timeout_s=600, label="activations")
        loaded = publish_profiles(settings, codec, scale)
        report = replica.wait(commands + loaded, timeout_s=1800, label="profiles")
        console.log(f"profiles loaded: {report}")
        before = report["records_done"]
        sent_before = report["enrollments_sent"]
        started = time.perf_counter()
        publish_signals(settings, codec, scale)
        report = replica.wait(before + scale.signals, timeout_s=3600, label="signals")
        seconds = time.perf_counter() - started
        enrolled = report["enrollments_sent"] - sent_before
        console.log(
            f"{scale.signals} signals in {seconds:.1f}s, {enrolled} enrollments"
        )
        return scale.signals / seconds, settings.topic_prefix, enrolled
    finally:
        replica.stop()


# --- faust's own cost ------------------------------------------------------------


def measure_faust_passthrough(settings: Settings, source: str, messages: int) -> float:
    """Messages per second of a faust agent forwarding raw bytes (subprocess)."""
    sink = f"{settings.topic_prefix}bench.faust-sink.{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as data:
        result = Path(data) / "result.json"
        env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=settings.kafka.bootstrap_servers)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.matcher",
                "--faust-passthrough",
                source,
                sink,
                str(messages),
                str(result),
                data,
                str(free_port_block(1)),
            ],
            env=env,
            check=True,
            timeout=1800,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        rate: float = json.loads(result.read_text())["msgs_per_s"]
        return rate


def faust_passthrough(arguments: list[str]) -> None:
    """Run a faust worker whose one agent forwards raw bytes; exit when done."""
    import faust

    source, sink, count, result, data, port = arguments
    messages = int(count)
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    app = faust.App(
        f"bench-faust-{uuid.uuid4().hex[:6]}",
        broker=[f"kafka://{server}" for server in bootstrap.split(",")],
        datadir=data,
        web_port=int(port),
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
    )
    inbound = app.topic(source, key_type=bytes, value_type=bytes)
    outbound = app.topic(
        sink, key_type=bytes, value_type=bytes, partitions=3, internal=True
    )
    state = {"started": 0.0, "done": 0}

    @app.agent(inbound)
    async def forward(stream: Any) -> None:
        async for event in stream.events():
            if not state["done"]:
                state["started"] = time.perf_counter()
            await outbound.send(key=event.key, value=event.value)
            state["done"] += 1
            if state["done"] == messages:
                await app.producer.flush()
                seconds = time.perf_counter() - state["started"]
                Path(result).write_text(json.dumps({"msgs_per_s": messages / seconds}))
                os._exit(0)

    app.main()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--signals", type=int, default=200_000)
    parser.add_argument("--audiences", type=int, nargs=2, default=[1_000, 10_000])
    args = parser.parse_args()
    scale = Scale(args.people, args.accounts, args.signals)
    base = bench_settings()
    base = base.model_copy(update={"default_partitions": 3})
    codec = Codec.load()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as workdir:
        rates, prefixes = [], []
        for count in args.audiences:
            rate, prefix, enrolled = measure_matcher(
                base, codec, scale, count, Path(workdir)
            )
            rates.append(rate)
            prefixes.append(prefix)
            results[f"matcher_msgs_per_s_{count}"] = round(rate, 1)
            results[f"enrollments_{count}"] = enrolled
        signals_topic = f"{prefix}signals"
        env_settings = base.model_copy(update={"topic_prefix": prefix})
        raw = measure_passthrough(
            env_settings, source_topic=signals_topic, messages=scale.signals
        ).msgs_per_s
        faust_rate = measure_faust_passthrough(
            env_settings, signals_topic, scale.signals
        )
        for used in prefixes:
            delete_topics(base.model_copy(update={"topic_prefix": used}))
    results.update(
        raw_msgs_per_s=round(raw, 1),
        faust_msgs_per_s=round(faust_rate, 1),
        ratio_1k=round(rates[0] / raw, 4),
        ratio_10k=round(rates[1] / raw, 4),
        scaling=round(rates[1] / rates[0], 4),
        faust_overhead_ratio=round(faust_rate / raw, 4),
    )
    print(json.dumps(results))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--faust-passthrough":
        passthrough_arguments = sys.argv[2:8]
        sys.argv = [sys.argv[0], "worker", "-l", "warn"]
        faust_passthrough(passthrough_arguments)
    else:
        main()
