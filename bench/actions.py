"""Webhook action throughput on a real broker and Redis, against a loopback server.

    python -m bench.actions [--messages 3000] [--replica-messages 1000]
                            [--rounds 5] [--replica-rounds 2]

Three ratios, each measured against a baseline taken in the same run, side by
side within a round; the median over the rounds is reported:

- `webhook_ratio`: the webhook action service (consume the command, check and
  record its idempotency key in Redis, render URL, headers and JSON payload,
  guard the address, send, publish the acknowledged step result, commit) over
  a plain httpx async client sending the same requests (8, 16 or 64 at once,
  whichever is fastest; the service runs 16), both against a server that
  answers at once. Target >= 0.6.
- `idempotency_ratio`: the same service with the Redis idempotency check on over
  the same with it off. Target >= 0.8.
- `replica_scaling`: against a server that answers after 50 ms, two replicas
  (`signalflow run action --type webhook` processes in one consumer group) over
  one. Each replica runs at most `REPLICA_IN_FLIGHT` commands at once, so one
  replica is bound by the server's latency and a second one doubles the work
  in flight. Target >= 1.8.

The HTTP server runs in its own process (aiohttp), so its CPU does not share the
measured event loop. The service's per-host webhook limits are raised for the
measurement (their defaults, 200 requests a second, would be what is measured),
and logging is at WARNING. Settings come from the environment; without
`KAFKA_BOOTSTRAP_SERVERS` / `REDIS_URL` the local broker and Redis are started
(or found) through `signalflow.local`. The last line printed is one JSON object:
`{"webhook_ratio": .., "idempotency_ratio": .., "replica_scaling": ..}`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import OFFSET_END, Consumer, TopicPartition
from rich.console import Console

from bench.passthrough import bench_settings
from services.actions.resources import Connectors, Resources
from services.actions.service import ActionService
from services.actions.settings import ActionSettings, WebhookSettings
from signalflow.contracts import Codec
from signalflow.kafka.admin import delete_topics, ensure_topics
from signalflow.kafka.clients import make_producer
from signalflow.local import ensure_redis, free_port_block
from signalflow.settings import RedisSettings, Settings
from signalflow.topics import ActionType, Topics

log = logging.getLogger(__name__)

PARTITIONS = 6
IN_FLIGHT = 16
PARTITION_CONCURRENCY = 8
#: The plain client's best of these counts as the baseline: past a few dozen
#: connections httpx's pool spends more time scanning than sending.
BASELINE_CONCURRENCY = (8, IN_FLIGHT, 64)
REPLICA_IN_FLIGHT = 4
REPLICA_PARTITION_CONCURRENCY = 4
SLOW_ANSWER_S = 0.05
TARGETS = {"webhook_ratio": 0.6, "idempotency_ratio": 0.8, "replica_scaling": 1.8}
PAYLOAD = (
    '{"email": "$Email", "name": "$First Name $Last Name", "title": '
    '"$Current Title", "company": "$Company Name", "signal": "$Signal Type"}'
)
SIGNALFLOW = str(Path(sys.executable).parent / "signalflow")


# --- the loopback server ---------------------------------------------------------


def serve(port: int) -> None:
    """Serve `/fast` (answers at once) and `/slow` (after 50 ms) until killed."""
    from aiohttp import web

    async def fast(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"data": {"id": "lead-1"}})

    async def slow(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(SLOW_ANSWER_S)
        return web.json_response({"data": {"id": "lead-1"}})

    app = web.Application()
    app.router.add_post("/fast", fast)
    app.router.add_post("/slow", slow)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


@contextlib.contextmanager
def hook_server() -> Iterator[str]:
    """Run the loopback server in a child process; yield its base URL."""
    port = free_port_block(1)
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.actions", "--serve", str(port)],
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        child.terminate()
        child.wait(10)


def _wait_for_port(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout_s}s")


# --- commands ----------------------------------------------------------------------


def webhook_commands(codec: Codec, url: str, count: int) -> list[tuple[str, bytes]]:
    """`count` encoded webhook step commands of fresh runs, with their run ids."""
    batch = uuid.uuid4().hex[:8]
    commands = []
    for index in range(count):
        run_id = f"bench-{batch}-{index}"
        record = _command(run_id, url)
        commands.append((run_id, codec.encode("step_command", record)))
    return commands


def _command(run_id: str, url: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    person = _profile(
        "dana",
        "PERSON",
        email="dana@acme.io",
        fields={"first_name": "Dana", "last_name": "Reyes", "title": "VP Sales"},
    )
    account = _profile("acme", "ACCOUNT", fields={"name": "Acme", "domain": "acme.io"})
    return {
        "run_id": run_id,
        "step_id": "0",
        "idempotency_key": f"{run_id}:0",
        "attempt": 1,
        "max_attempts": 5,
        "action_type": str(ActionType.WEBHOOK),
        "workflow_id": "bench",
        "workflow_version": 1,
        "mode": "LIVE",
        "params": json.dumps(
            {
                "url": url,
                "method": "POST",
                "headers": {"X-Campaign": "$Company Name"},
                "payload": PAYLOAD,
            }
        ),
        "enrollment": {
            "run_id": run_id,
            "workflow_id": "bench",
            "workflow_version": 1,
            "mode": "LIVE",
            "command_id": None,
            "person_key": "dana",
            "account_key": "acme",
            "enrolled_at": now,
            "person": person,
            "account": account,
            "signals": [
                {
                    "signal_id": f"sig-{run_id}",
                    "type": "funding",
                    "scope": "COMPANY",
                    "occurred_at": now,
                    "attributes": {"round": "Series B"},
                }
            ],
            "explanation": [],
        },
        "outputs": {},
        "errors": [],
        "run_started_at": now,
        "issued_at": now,
    }


def _profile(
    key: str, kind: str, *, email: str | None = None, fields: dict[str, Any]
) -> dict[str, Any]:
    return {
        "key": key,
        "kind": kind,
        "account_key": "acme",
        "updated_at": datetime.now(UTC),
        "deleted": False,
        "email": email,
        "owner": None,
        "past_owners": [],
        "last_activity_at": None,
        "fields": fields,
    }


def produce(settings: Settings, commands: list[tuple[str, bytes]]) -> None:
    """Produce commands to the webhook topic, keyed by run id; wait for the acks."""
    producer = make_producer(settings, linger_ms=5)
    topic = Topics(settings).action(ActionType.WEBHOOK)
    for run_id, value in commands:
        while True:
            try:
                producer.produce(topic, value, key=run_id)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(60):
        raise RuntimeError("commands were not acknowledged within 60 s")


# --- measurements ------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    """How many requests or commands were done, in how long, for how much CPU.

    `cpu_s` is this process's CPU time over the measurement (every thread, so a
    service's Kafka client threads count); 0 when the work ran in other processes.
    """

    count: int
    seconds: float
    cpu_s: float = 0.0

    @property
    def cpu_ms(self) -> float:
        return self.cpu_s / self.count * 1000

    @property
    def per_s(self) -> float:
        return self.count / self.seconds


async def measure_httpx(url: str, count: int, *, concurrency: int) -> Rate:
    """Send `count` requests like the action's with a plain httpx client."""
    body = json.dumps(
        {
            "email": "dana@acme.io",
            "name": "Dana Reyes",
            "title": "VP Sales",
            "company": "Acme",
            "signal": "funding",
        }
    ).encode()
    headers = {"X-Campaign": "Acme", "Content-Type": "application/json"}
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:

        async def send() -> None:
            async with gate:
                response = await client.post(url, content=body, headers=headers)
                response.raise_for_status()

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(send() for _ in range(count)))
        return Rate(count, time.perf_counter() - started, time.process_time() - cpu)


async def measure_service(
    settings: Settings, url: str, count: int, *, idempotency: bool, codec: Codec
) -> Rate:
    """Run one in-process webhook service over `count` fresh commands."""
    own = ActionSettings(
        max_in_flight=IN_FLIGHT, partition_concurrency=PARTITION_CONCURRENCY
    )
    resources = Resources(
        settings=settings,
        own=own,
        redis=_redis(settings),
        connectors=Connectors({}),
        webhook=_webhook_settings(IN_FLIGHT),
    )
    commands = webhook_commands(codec, url, count)
    service = ActionService(
        settings,
        ActionType.WEBHOOK,
        own=own,
        resources=resources,
        idempotency=idempotency,
    )
    async with service:
        await _until(lambda: len(service.health().get("partitions", [])) == PARTITIONS)
        done_before = service.health()["records_done"]
        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.to_thread(produce, settings, commands)
        await _until(
            lambda: service.health()["records_done"] - done_before >= count,
            timeout_s=300,
        )
        elapsed, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    await resources.redis.aclose()
    return Rate(count, elapsed, cpu_s)


async def measure_replicas(
    settings: Settings, url: str, count: int, *, replicas: int, codec: Codec
) -> Rate:
    """Run `replicas` service processes in one group over `count` fresh commands."""
    commands = webhook_commands(codec, url, count)
    async with _replica_processes(settings, replicas) as health_urls:
        await _until_assigned(health_urls)
        counter = ResultCounter(settings, {run_id for run_id, _ in commands})
        counter.start()
        started = time.perf_counter()
        await asyncio.to_thread(produce, settings, commands)
        await _until(lambda: counter.seen >= count, timeout_s=600)
        elapsed = time.perf_counter() - started
        counter.stop()
    return Rate(count, elapsed)


@contextlib.asynccontextmanager
async def _replica_processes(
    settings: Settings, replicas: int
) -> AsyncIterator[list[str]]:
    processes = []
    health_urls = []
    # One block for all replicas: each process needs a health port of its own.
    first_port = free_port_block(len(ActionType) * replicas)
    for number in range(replicas):
        base_port = first_port + number * len(ActionType)
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "REDIS_URL": settings.redis.url,
            "SIGNALFLOW_TOPIC_PREFIX": settings.topic_prefix,
            "SIGNALFLOW_LOG_LEVEL": "WARNING",
            "SIGNALFLOW_ACTIONS_BASE_PORT": str(base_port),
            "SIGNALFLOW_ACTIONS_MAX_IN_FLIGHT": str(REPLICA_IN_FLIGHT),
            "SIGNALFLOW_ACTIONS_PARTITION_CONCURRENCY": str(
                REPLICA_PARTITION_CONCURRENCY
            ),
            "SIGNALFLOW_WEBHOOK_ALLOWLIST": "127.0.0.1",
            "SIGNALFLOW_WEBHOOK_PER_HOST_RATE_PER_S": "100000",
            "SIGNALFLOW_WEBHOOK_PER_HOST_CONCURRENCY": str(REPLICA_IN_FLIGHT),
        }
        processes.append(
            subprocess.Popen(
                [SIGNALFLOW, "run", "action", "--type", str(ActionType.WEBHOOK)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        port = base_port + list(ActionType).index(ActionType.WEBHOOK)
        health_urls.append(f"http://127.0.0.1:{port}/health")
    try:
        yield health_urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            await asyncio.to_thread(process.wait, 60)


async def _until_assigned(health_urls: list[str], timeout_s: float = 120) -> None:
    """Wait until the replicas together own every partition, each some."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(trust_env=False) as client:
        while time.monotonic() < deadline:
            owned = []
            for url in health_urls:
                try:
                    answer = await client.get(url)
                    owned.append(len(answer.json().get("partitions", [])))
                except (httpx.HTTPError, ValueError):
                    owned.append(0)
            if sum(owned) == PARTITIONS and all(owned):
                return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"replicas did not share the partitions in {timeout_s}s")


class ResultCounter:
    """Counts, in a thread, the step results answering a set of runs."""

    def __init__(self, settings: Settings, run_ids: set[str]) -> None:
        self._run_ids = run_ids
        self._seen: set[str] = set()
        self._running = threading.Event()
        self._consumer = Consumer(
            {
                **settings.kafka.librdkafka_config(),
                "group.id": f"bench-results-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
            }
        )
        topic = Topics(settings).name("step-results")
        self._consumer.assign(
            [TopicPartition(topic, p, OFFSET_END) for p in range(PARTITIONS)]
        )
        self._codec = Codec.load()
        self._thread = threading.Thread(target=self._count, daemon=True)

    @property
    def seen(self) -> int:
        return len(self._seen)

    def start(self) -> None:
        self._running.set()
        self._thread.start()

    def stop(self) -> None:
        self._running.clear()
        self._thread.join()
        self._consumer.close()

    def _count(self) -> None:
        while self._running.is_set():
            for message in self._consumer.consume(500, 0.1):
                value = message.value()
                if message.error() is not None or value is None:
                    continue
                run_id = self._codec.decode("step_result", value)["run_id"]
                if run_id in self._run_ids:
                    self._seen.add(run_id)


async def _until(check: Any, *, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.02)


def _redis(settings: Settings) -> Any:
    from redis.asyncio import Redis

    return Redis.from_url(settings.redis.url)


def _webhook_settings(concurrency: int) -> WebhookSettings:
    return WebhookSettings(
        allowlist=["127.0.0.1"],
        per_host_concurrency=concurrency,
        per_host_rate_per_s=100_000,
    )


# --- the run -----------------------------------------------------------------------


async def run(
    settings: Settings,
    *,
    messages: int,
    replica_messages: int,
    rounds: int,
    replica_rounds: int,
) -> dict[str, float]:
    """Measure each pair side by side, several rounds; return the median ratios.

    Each ratio is taken within one round, from measurements made one after the
    other, so a machine whose load drifts over the run skews both sides alike.
    """
    console = Console(stderr=True)
    codec = Codec.load()
    ratios: dict[str, list[float]] = {name: [] for name in TARGETS}

    def note(name: str, rate: Rate) -> float:
        console.print(
            f"{name:>26}: {rate.per_s:8,.0f}/s ({rate.count} in {rate.seconds:.2f}s, "
            f"{rate.cpu_ms:.2f} ms CPU each in this process)"
        )
        return rate.per_s

    with hook_server() as base:
        fast, slow = f"{base}/fast", f"{base}/slow"
        for number in range(1, rounds + 1):
            console.rule(f"round {number} of {rounds}, immediate answers")
            plain = max(
                [
                    note(
                        f"httpx, {concurrency} at once",
                        await measure_httpx(fast, messages, concurrency=concurrency),
                    )
                    for concurrency in BASELINE_CONCURRENCY
                ]
            )
            checked = note(
                "service (idempotent)",
                await measure_service(
                    settings, fast, messages, idempotency=True, codec=codec
                ),
            )
            unchecked = note(
                "service (no idempotency)",
                await measure_service(
                    settings, fast, messages, idempotency=False, codec=codec
                ),
            )
            ratios["webhook_ratio"].append(checked / plain)
            ratios["idempotency_ratio"].append(checked / unchecked)
        for number in range(1, replica_rounds + 1):
            console.rule(f"round {number} of {replica_rounds}, 50 ms answers")
            rates = [
                note(
                    f"{replicas} replica process(es)",
                    await measure_replicas(
                        settings, slow, replica_messages, replicas=replicas, codec=codec
                    ),
                )
                for replicas in (1, 2)
            ]
            ratios["replica_scaling"].append(rates[1] / rates[0])
    result = {name: statistics.median(values) for name, values in ratios.items()}
    for name, value in result.items():
        met = "[green]meets[/green]" if value >= TARGETS[name] else "[red]misses[/red]"
        rounds_text = ", ".join(f"{v:.3f}" for v in ratios[name])
        console.print(
            f"{name} {value:.3f} (rounds: {rounds_text}) {met} the target "
            f"{TARGETS[name]}"
        )
    return {name: round(value, 4) for name, value in result.items()}


def environment() -> Settings:
    """Benchmark settings: a fresh topic prefix with six partitions per topic."""
    settings = bench_settings()
    redis = RedisSettings(url=ensure_redis(settings))
    prefix = f"{settings.topic_prefix}bench-actions-{uuid.uuid4().hex[:6]}."
    return settings.model_copy(
        update={
            "redis": redis,
            "topic_prefix": prefix,
            "default_partitions": PARTITIONS,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--replica-messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--replica-rounds", type=int, default=2)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    logging.basicConfig(level=logging.WARNING)
    settings = environment()
    ensure_topics(settings)
    try:
        result = asyncio.run(
            run(
                settings,
                messages=args.messages,
                replica_messages=args.replica_messages,
                rounds=args.rounds,
                replica_rounds=args.replica_rounds,
            )
        )
    finally:
        delete_topics(settings)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
