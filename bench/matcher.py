"""Matcher throughput against the raw passthrough, at 1,000 and 10,000 audiences.

    python -m bench.matcher [--people 100000] [--accounts 10000] [--signals 200000]
                            [--audiences 1000 10000]

For each audience count, in a fresh environment (topic prefix) on the same broker:
saves the audiences and their realtime workflows, starts `signalflow run matcher`,
activates the workflows, loads every account and person profile and waits until
the matcher has taken them all in. Only then does the clock start: the signals
(encoded beforehand) are published, and the clock stops when the matcher reports
(`/health`) that it has processed the last one with every enrollment it caused
acknowledged by the broker.

In the same run and on the same broker, the raw passthrough
(`bench.passthrough.measure_passthrough`: confluent-kafka forwarding bytes) reads
each environment's signals topic, and a faust agent forwarding the same bytes
measures what faust itself costs. The last line printed is one JSON object:
`ratio_1k`, `ratio_10k` (matcher / raw passthrough), `scaling` (signals/s at
10,000 audiences / at 1,000), `faust_overhead_ratio` (faust passthrough / raw),
the absolute rates, the enrollment counts and the load average.

The data has a realistic shape. Accounts carry an industry, a size and a country;
people a title, a department, often an email and a last activity. Signals come
from 40 types (28 company, 12 person) with skewed frequencies, as real feeds have
(web visits and intent topics are common, funding rounds rare). An audience reads
2 to 5 predicates: a person signal (most audiences) and/or a company signal, a
persona (title) and a firmographic condition, sometimes one more; so most
audiences ignore any given event, and a signal enrolls few people. The generator
is calibrated for well under one enrollment per signal; the count is printed.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from bench.passthrough import bench_settings, create_topic, measure_passthrough
from bench.passthrough import delete_topics as delete_bench_topics
from services.matcher.app import PRODUCER_LINGER_S
from signalflow.contracts import Codec
from signalflow.definitions.records import definition_key, to_record
from signalflow.kafka.admin import delete_topics, ensure_topics
from signalflow.local import ensure_redis, free_port_block
from signalflow.settings import RedisSettings, Settings
from signalflow.topics import Topics
from signalflow.workflow import Audience, Workflow

COMPANY_TYPES = [
    "website_visit",
    "new_tech",
    "hiring_surge",
    "expansion",
    "earnings",
    "leadership_change",
    "funding",
    "acquisition",
] + [f"intent_topic_{index:02d}" for index in range(20)]
PERSON_TYPES = [
    "engagement",
    "webinar",
    "content_download",
    "event_attendee",
    "new_hire",
    "job_change",
    "promotion",
    "multi_thread",
    "community_post",
    "review_written",
    "past_customer",
    "past_champion",
]
TITLES = [
    f"{level} {area}"
    for level in ("VP", "Director", "Head of", "Manager")
    for area in ("Sales", "Marketing", "Engineering", "IT", "Finance", "Operations")
] + [
    "CEO",
    "CTO",
    "CFO",
    "CMO",
    "CRO",
    "COO",
    "Engineer",
    "Analyst",
    "SDR",
    "Account Executive",
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
COMPANY_SHARE = 0.4
SIGNAL_AGE_DAYS = 60
READY_TIMEOUT_S = 180.0
POLL_S = 0.2
FAUST_TIMEOUT_S = 600.0

console = Console(stderr=True)


@dataclass(frozen=True)
class Scale:
    """How much data one environment holds."""

    people: int
    accounts: int
    signals: int


@dataclass(frozen=True)
class MatcherRun:
    """One timed signal stream through the matcher (in the environment of
    topic prefix `prefix`, when it ran as a worker)."""

    audiences: int
    signals: int
    seconds: float
    enrollments: int
    prefix: str = ""

    @property
    def msgs_per_s(self) -> float:
        return self.signals / self.seconds


# --- data ------------------------------------------------------------------------


def skewed_weights(count: int, *, exponent: float = 1.0) -> list[float]:
    """Zipf-like weights: the first type is the most frequent."""
    return [1.0 / (rank + 1) ** exponent for rank in range(count)]


COMPANY_WEIGHTS = skewed_weights(len(COMPANY_TYPES))
PERSON_WEIGHTS = skewed_weights(len(PERSON_TYPES))


def audience_filter(rng: random.Random) -> dict[str, Any]:
    """Signal predicates, a persona, a segment of accounts, maybe one more.

    Half the audiences want a person signal, a third a person and a company
    signal, the rest a company signal alone. Every audience then targets a persona
    (one or two titles) in a segment (two of industry, country, size and
    department), and adds a contact condition (email, last activity) when it has
    room: 4 or 5 predicates.
    """
    parts: list[dict[str, Any]] = []
    draw = rng.random()
    if draw < 0.85:
        parts.append(signal_predicate(rng, "person_signal", PERSON_TYPES))
    if draw >= 0.5:
        parts.append(signal_predicate(rng, "company_signal", COMPANY_TYPES))
    titles = rng.sample(TITLES, rng.randint(1, 2))
    parts.append(
        {
            "kind": "compare",
            "object": "person",
            "field": "title",
            "op": "in",
            "value": titles,
        }
    )
    parts.extend(make(rng) for make in rng.sample(SEGMENTS, 2))
    if len(parts) < 5:
        parts.append(rng.choice(CONTACT_CONDITIONS)(rng))
    return {"kind": "all", "of": parts}


def signal_predicate(rng: random.Random, kind: str, types: list[str]) -> dict[str, Any]:
    predicate: dict[str, Any] = {
        "kind": kind,
        "types": rng.sample(types, rng.randint(1, 2)),
    }
    if rng.random() < 0.5:
        predicate["within_days"] = rng.choice([30, 90])
    return predicate


def account_field(field: str, op: str, value: Any) -> dict[str, Any]:
    return {
        "kind": "compare",
        "object": "account",
        "field": field,
        "op": op,
        "value": value,
    }


Condition = Callable[[random.Random], dict[str, Any]]

SEGMENTS: list[Condition] = [
    lambda rng: account_field("industry", "in", [rng.choice(INDUSTRIES)]),
    lambda rng: account_field("country", "in", [rng.choice(COUNTRIES)]),
    lambda rng: account_field("employees", "gt", 5000),
    lambda rng: {
        "kind": "compare",
        "object": "person",
        "field": "department",
        "op": "eq",
        "value": rng.choice(DEPARTMENTS),
    },
]
CONTACT_CONDITIONS: list[Condition] = [
    lambda rng: {"kind": "has_email", "value": True},
    lambda rng: {
        "kind": "last_activity",
        "condition": "before",
        "months": 6,
        "or_empty": True,
    },
]


def definitions(count: int) -> Iterator[tuple[Audience, Workflow]]:
    """`count` audiences, each with an active realtime workflow.

    A quarter of the workflows cap enrollments per account, a tenth per rep.
    """
    rng = random.Random(7)
    for index in range(count):
        audience = Audience.model_validate(
            {"id": f"aud-{index}", "name": f"a{index}", "filter": audience_filter(rng)}
        )
        limits: dict[str, int] = {}
        if index % 4 == 0:
            limits["max_per_account"] = 5
        if index % 10 == 0:
            limits["max_per_rep"] = 200
        workflow = Workflow.model_validate(
            {
                "id": f"wf-{index}",
                "name": f"w{index}",
                "audience_id": audience.id,
                "steps": STEPS,
                "status": "active",
                "limits": limits,
            }
        )
        yield audience, workflow


def profile_records(scale: Scale, now: datetime) -> Iterator[dict[str, Any]]:
    """Every account's profile, then every person's (person i works at account
    i modulo the account count)."""
    rng = random.Random(11)
    for index in range(scale.accounts):
        key = f"acc-{index}"
        yield profile(
            key,
            "ACCOUNT",
            key,
            now,
            owner=rng.choice(OWNERS),
            fields={
                "industry": rng.choice(INDUSTRIES),
                "employees": int(10 ** rng.uniform(0.7, 4.3)),
                "country": rng.choice(COUNTRIES),
            },
        )
    for index in range(scale.people):
        key = f"p-{index}"
        activity = (
            None if rng.random() < 0.4 else now - timedelta(days=rng.randint(1, 400))
        )
        yield profile(
            key,
            "PERSON",
            f"acc-{index % scale.accounts}",
            now,
            email=f"{key}@x.io" if rng.random() < 0.8 else None,
            owner=rng.choice(OWNERS),
            last_activity=activity,
            fields={"title": rng.choice(TITLES), "department": rng.choice(DEPARTMENTS)},
        )


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


def signal_records(scale: Scale, now: datetime) -> Iterator[dict[str, Any]]:
    """Signals about random people and their accounts, from the last 60 days."""
    rng = random.Random(13)
    for index in range(scale.signals):
        person_index = rng.randrange(scale.people)
        account = f"acc-{person_index % scale.accounts}"
        company = rng.random() < COMPANY_SHARE
        types, weights = (
            (COMPANY_TYPES, COMPANY_WEIGHTS)
            if company
            else (PERSON_TYPES, PERSON_WEIGHTS)
        )
        yield {
            "signal_id": f"s-{index}",
            "type": rng.choices(types, weights)[0],
            "scope": "COMPANY" if company else "PERSON",
            "account_key": account,
            "person_key": None if company else f"p-{person_index}",
            "occurred_at": now
            - timedelta(seconds=rng.randint(0, SIGNAL_AGE_DAYS * 86_400)),
            "source": "bench",
            "attributes": {},
        }


# --- publishing ------------------------------------------------------------------


class Publisher:
    """A producer that partitions keys with murmur2, like the Java client and
    faust, so records land where the matcher's co-partitioning expects them."""

    def __init__(self, settings: Settings) -> None:
        self._producer = Producer(
            {
                **settings.kafka.librdkafka_config(),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 20,
                "partitioner": "murmur2_random",
                "queue.buffering.max.messages": 500_000,
            }
        )

    def produce(
        self, topic: str, key: bytes, value: bytes, *, partition: int | None = None
    ) -> None:
        """Queue one record, waiting for room when the queue is full."""
        while True:
            try:
                if partition is None:
                    self._producer.produce(topic, value, key=key)
                else:
                    self._producer.produce(topic, value, key=key, partition=partition)
                self._producer.poll(0)
                return
            except BufferError:
                self._producer.poll(0.05)

    def flush(self, what: str) -> None:
        """Wait until the broker acknowledged everything; raises RuntimeError
        naming `what` when it does not within two minutes."""
        remaining = self._producer.flush(120)
        if remaining:
            raise RuntimeError(f"{remaining} {what} were not acknowledged in 120 s")


def publish_definitions(settings: Settings, codec: Codec, count: int) -> list[str]:
    """Save `count` audiences and their workflows (version 1); returns the
    workflow ids."""
    publisher = Publisher(settings)
    topic = Topics(settings).name("workflows")
    now = datetime.now(UTC)
    ids = []
    for audience, workflow in definitions(count):
        for definition in (audience, workflow):
            record = to_record(definition, version=1, deleted=False, saved_at=now)
            publisher.produce(
                topic,
                definition_key(definition.id, 1),
                codec.encode("definition", record),
            )
        ids.append(workflow.id)
    publisher.flush("definitions")
    return ids


def activate(settings: Settings, codec: Codec, workflow_ids: list[str]) -> int:
    """Activate every workflow (future matches only) on every partition, as the
    api does; returns how many commands were written."""
    publisher = Publisher(settings)
    topic = Topics(settings).name("control")
    partitions = settings.default_partitions
    now = datetime.now(UTC)
    for workflow_id in workflow_ids:
        value = codec.encode("control", activation(workflow_id, now, partitions))
        for partition in range(partitions):
            publisher.produce(topic, workflow_id.encode(), value, partition=partition)
    publisher.flush("control commands")
    return len(workflow_ids) * partitions


def activation(workflow_id: str, now: datetime, partitions: int) -> dict[str, Any]:
    """The control command activating version 1 of a workflow for future
    matches, as the api writes it."""
    return {
        "command_id": f"act-{workflow_id}",
        "kind": "ACTIVATE",
        "workflow_id": workflow_id,
        "workflow_version": 1,
        "execution_timing": "FUTURE_ONLY",
        "limit": None,
        "issued_at": now,
        "partition_count": partitions,
    }


def publish_profiles(settings: Settings, codec: Codec, scale: Scale) -> int:
    """Publish every account's and person's profile; returns how many."""
    publisher = Publisher(settings)
    topic = Topics(settings).name("profiles")
    count = 0
    for record in profile_records(scale, datetime.now(UTC)):
        publisher.produce(
            topic, record["key"].encode(), codec.encode("profile", record)
        )
        count += 1
    publisher.flush("profiles")
    return count


def encode_signals(codec: Codec, scale: Scale) -> list[tuple[bytes, bytes]]:
    """The signals as (key, value) bytes, encoded before the clock starts."""
    return [
        (record["account_key"].encode(), codec.encode("signal", record))
        for record in signal_records(scale, datetime.now(UTC))
    ]


def publish_signals(settings: Settings, encoded: list[tuple[bytes, bytes]]) -> None:
    publisher = Publisher(settings)
    topic = Topics(settings).name("signals")
    for key, value in encoded:
        publisher.produce(topic, key, value)
    publisher.flush("signals")


# --- the matcher process ---------------------------------------------------------


def profiled(command: list[str], profile: Path, name: str) -> list[str]:
    """`command` (the signalflow script) run under a profiler that writes a
    whole-run profile when it stops: cProfile when `profile` ends in `.prof`,
    else pyinstrument's text report. The file name gets `name` appended."""
    output = profile.with_name(f"{profile.stem}-{name}{profile.suffix}")
    if profile.suffix == ".prof":
        runner = ["-m", "cProfile", "-o", str(output)]
    else:
        runner = ["-m", "pyinstrument", "--outfile", str(output)]
    return [sys.executable, *runner, "-m", "signalflow", *command[1:]]


class Replica:
    """`signalflow run matcher` in a subprocess, watched through /health.

    With `BENCH_MATCHER_PROFILE` set to a file name, the matcher runs under a
    profiler (see `profiled`).
    """

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
        command = [str(Path(sys.executable).parent / "signalflow"), "run", "matcher"]
        profile = os.environ.get("BENCH_MATCHER_PROFILE")
        if profile:
            command = profiled(command, Path(profile), data_dir.name)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def health(self) -> dict[str, Any]:
        """The /health report, or {} while the server does not answer; raises
        RuntimeError when the process has exited."""
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

    def wait_owning(self, partitions: int) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while len(self.health().get("partitions", [])) < partitions:
            if time.monotonic() > deadline:
                raise TimeoutError("the matcher did not take up its partitions")
            time.sleep(0.5)

    def wait_done(
        self,
        kind: str,
        count: int,
        *,
        timeout_s: float,
        progress: Progress,
        label: str,
    ) -> dict[str, Any]:
        """Wait until /health reports `count` records of input `kind` done
        (written out and acknowledged), showing progress; returns the report."""
        task = progress.add_task(label, total=count)
        deadline = time.monotonic() + timeout_s
        report: dict[str, Any] = {}
        try:
            while time.monotonic() < deadline:
                report = self.health()
                done = int(report.get("done", {}).get(kind, 0))
                progress.update(task, completed=min(done, count))
                if done >= count:
                    return report
                time.sleep(POLL_S)
        finally:
            progress.remove_task(task)
        raise TimeoutError(f"{label}: the matcher reached {report} of {count}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def measure_matcher(
    base: Settings,
    codec: Codec,
    scale: Scale,
    audiences: int,
    *,
    workdir: Path,
    progress: Progress,
) -> MatcherRun:
    """Set up an environment with `audiences` workflows and its profiles, then
    time the signal stream through the matcher."""
    settings = base.model_copy(update={"topic_prefix": f"bm{uuid.uuid4().hex[:6]}."})
    ensure_topics(settings)
    console.log(f"{audiences} audiences under {settings.topic_prefix}")
    workflow_ids = publish_definitions(settings, codec, audiences)
    replica = Replica(settings, workdir / settings.topic_prefix.rstrip("."))
    try:
        replica.wait_owning(settings.default_partitions)
        commands = activate(settings, codec, workflow_ids)
        replica.wait_done(
            "control", commands, timeout_s=600, progress=progress, label="activating"
        )
        profiles = publish_profiles(settings, codec, scale)
        replica.wait_done(
            "profiles", profiles, timeout_s=900, progress=progress, label="profiles"
        )
        encoded = encode_signals(codec, scale)
        before = replica.health()
        started = time.perf_counter()
        publish_signals(settings, encoded)
        report = replica.wait_done(
            "signals",
            len(encoded),
            timeout_s=1800,
            progress=progress,
            label=f"signals ({audiences} audiences)",
        )
        seconds = time.perf_counter() - started
    finally:
        replica.stop()
    enrolled = report["enrollments_sent"] - before["enrollments_sent"]
    run = MatcherRun(
        audiences, len(encoded), seconds, enrolled, prefix=settings.topic_prefix
    )
    console.log(
        f"{audiences} audiences: {run.signals} signals in {seconds:.1f} s "
        f"({run.msgs_per_s:,.0f}/s), {enrolled} enrollments "
        f"({enrolled / run.signals:.3f} per signal)"
    )
    return run


# --- the baselines ---------------------------------------------------------------


def measure_faust_passthrough(
    settings: Settings, source: str, messages: int, *, log_path: Path
) -> float:
    """Messages per second of a faust agent forwarding raw bytes (subprocess,
    its output in `log_path`), into a sink topic created beforehand: faust
    creates only the topics it consumes."""
    sink = create_topic(settings, "faust-sink", partitions=settings.default_partitions)
    try:
        with tempfile.TemporaryDirectory() as data, log_path.open("ab") as log:
            result = Path(data) / "result.json"
            env = dict(
                os.environ, KAFKA_BOOTSTRAP_SERVERS=settings.kafka.bootstrap_servers
            )
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
                timeout=FAUST_TIMEOUT_S,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            rate: float = json.loads(result.read_text())["msgs_per_s"]
            return rate
    finally:
        delete_bench_topics(settings, sink)


def faust_passthrough(arguments: list[str]) -> None:
    """Run a faust worker whose one agent forwards raw bytes; exit when done.

    Configured like the matcher's app (raw serializers, acks from all replicas),
    timed from its first record to the last one acknowledged.
    """
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
    # The matcher's producer batching; and no terminal spinner, which would
    # turn debug logging on (see services.matcher.main).
    app.conf.producer_linger = PRODUCER_LINGER_S
    inbound = app.topic(source, key_type=bytes, value_type=bytes)
    outbound = app.topic(sink, key_type=bytes, value_type=bytes)
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

    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    worker.spinner = None
    worker.execute_from_commandline()


# --- the run ---------------------------------------------------------------------


def label(count: int) -> str:
    """`1k` for 1000, `10k` for 10000, the number otherwise."""
    return f"{count // 1000}k" if count % 1000 == 0 else str(count)


def report(
    runs: list[MatcherRun], raw: float, faust_rate: float, load: tuple[float, ...]
) -> dict[str, Any]:
    """The last line: ratios, scaling, faust's overhead and the absolute numbers."""
    results: dict[str, Any] = {}
    for run in runs:
        results[f"ratio_{label(run.audiences)}"] = round(run.msgs_per_s / raw, 4)
    results["scaling"] = round(runs[-1].msgs_per_s / runs[0].msgs_per_s, 4)
    results["faust_overhead_ratio"] = round(faust_rate / raw, 4)
    for run in runs:
        name = label(run.audiences)
        results[f"matcher_msgs_per_s_{name}"] = round(run.msgs_per_s, 1)
        results[f"enrollments_{name}"] = run.enrollments
        results[f"enrollments_per_signal_{name}"] = round(
            run.enrollments / run.signals, 4
        )
    results.update(
        raw_msgs_per_s=round(raw, 1),
        faust_msgs_per_s=round(faust_rate, 1),
        signals=runs[0].signals,
        load_average=[round(value, 2) for value in load],
    )
    return results


def progress_bars() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def scale_arguments(description: str) -> tuple[Scale, list[int]]:
    """The data's size and the audience counts, from the command line."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--signals", type=int, default=200_000)
    parser.add_argument("--audiences", type=int, nargs="+", default=[1_000, 10_000])
    args = parser.parse_args()
    return Scale(args.people, args.accounts, args.signals), args.audiences


def main() -> None:
    scale, audience_counts = scale_arguments((__doc__ or "").splitlines()[0])
    settings = bench_settings()
    base = settings.model_copy(
        update={
            "default_partitions": 3,
            "redis": RedisSettings(url=ensure_redis(settings)),
        }
    )
    codec = Codec.load()
    load_before = os.getloadavg()
    console.log(f"load average {load_before}")
    runs: list[MatcherRun] = []
    raw_rates: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as workdir, progress_bars() as progress:
            for count in audience_counts:
                run = measure_matcher(
                    base, codec, scale, count, workdir=Path(workdir), progress=progress
                )
                runs.append(run)
                env = base.model_copy(update={"topic_prefix": run.prefix})
                # The raw baseline after each run, on the same signals; the best
                # counts, so the load others put on the machine favours no run.
                raw_rates.append(
                    measure_passthrough(
                        env,
                        source_topic=f"{run.prefix}signals",
                        messages=run.signals,
                        progress=progress,
                    ).msgs_per_s
                )
            console.log("faust passthrough")
            faust_rate = measure_faust_passthrough(
                env,
                f"{runs[-1].prefix}signals",
                runs[-1].signals,
                log_path=Path(workdir) / "faust-passthrough.log",
            )
    finally:
        for run in runs:
            delete_topics(base.model_copy(update={"topic_prefix": run.prefix}))
    load = (*load_before, *os.getloadavg())
    print(json.dumps(report(runs, max(raw_rates), faust_rate, load)))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--faust-passthrough":
        faust_passthrough(sys.argv[2:8])
    else:
        main()
