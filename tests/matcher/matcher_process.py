"""Running `signalflow run matcher` as a subprocess, and talking to it over Kafka.

`MatcherProcess` starts a replica with its own data directory and health port,
waits until it owns partitions, and stops it with SIGTERM or kills it with SIGKILL.
`Feed` publishes profiles, signals and control commands the way integrators and
the api do (Avro single-object, keyed by account, murmur2 partitioning like the
Java client), and reads enrollments back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from signalflow.contracts import Codec
from signalflow.local import free_port_block
from signalflow.settings import Settings
from signalflow.topics import Topics

Json = dict[str, Any]
READY_TIMEOUT_S = 90.0


class MatcherProcess:
    """One matcher replica in a subprocess."""

    def __init__(
        self,
        settings: Settings,
        data_dir: Path,
        *,
        tick_interval_s: float = 1.0,
        session_timeout_s: float = 15.0,
        flush_interval_s: float = 0.5,
        clock_file: Path | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.port = free_port_block(1)
        self.tick_interval_s = tick_interval_s
        self.session_timeout_s = session_timeout_s
        self.flush_interval_s = flush_interval_s
        self.clock_file = clock_file
        self.log_path = log_path or data_dir.with_suffix(".log")
        self.process: subprocess.Popen[bytes] | None = None

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": self.settings.kafka.bootstrap_servers,
                "REDIS_URL": self.settings.redis.url,
                "SIGNALFLOW_TOPIC_PREFIX": self.settings.topic_prefix,
                "SIGNALFLOW_DEFAULT_PARTITIONS": str(self.settings.default_partitions),
                "SIGNALFLOW_LOG_LEVEL": "INFO",
                "SIGNALFLOW_MATCHER_PORT": str(self.port),
                "SIGNALFLOW_MATCHER_DATA_DIR": str(self.data_dir),
                "SIGNALFLOW_MATCHER_TICK_INTERVAL_S": str(self.tick_interval_s),
                "SIGNALFLOW_MATCHER_STATUS_INTERVAL_S": "5",
                "SIGNALFLOW_MATCHER_COMMIT_INTERVAL_S": "0.5",
                "SIGNALFLOW_MATCHER_SESSION_TIMEOUT_S": str(self.session_timeout_s),
                "SIGNALFLOW_MATCHER_FLUSH_INTERVAL_S": str(self.flush_interval_s),
            }
        )
        if self.clock_file is not None:
            env["SIGNALFLOW_MATCHER_CLOCK_FILE"] = str(self.clock_file)
        return env

    def start(self) -> MatcherProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).parent / "signalflow"), "run", "matcher"],
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def health(self) -> Json | None:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}/health", timeout=2
            ) as response:
                return json.loads(response.read())
        except OSError:
            return None

    def wait_owning(self, minimum: int = 1, timeout_s: float = READY_TIMEOUT_S) -> Json:
        """Wait until the replica has taken up at least `minimum` partitions."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._check_alive()
            report = self.health()
            if report is not None and len(report["partitions"]) >= minimum:
                return report
            time.sleep(0.3)
        raise TimeoutError(
            f"matcher did not own {minimum} partitions; see {self.log_path}"
        )

    def done(self, kind: str) -> int:
        """How many records of input `kind` the replica has written out."""
        report = self.health() or {}
        return int(report.get("done", {}).get(kind, 0))

    def wait_done(self, kind: str, count: int, timeout_s: float = 60.0) -> None:
        """Wait until the replica has written out `count` records of `kind`."""
        deadline = time.monotonic() + timeout_s
        while self.done(kind) < count:
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"matcher did not write out {count} {kind}; see {self.log_path}"
                )
            time.sleep(0.2)

    def wait_settled(self, kind: str, quiet_s: float = 2.0) -> int:
        """Wait until the count of `kind` written out stops changing for
        `quiet_s` (the replica caught up); returns it."""
        count, since = self.done(kind), time.monotonic()
        deadline = since + READY_TIMEOUT_S
        while time.monotonic() - since < quiet_s:
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"matcher never caught up; see {self.log_path}")
            time.sleep(0.2)
            latest = self.done(kind)
            if latest != count:
                count, since = latest, time.monotonic()
        return count

    def wait_healthy(self, timeout_s: float = READY_TIMEOUT_S) -> Json:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._check_alive()
            report = self.health()
            if report is not None:
                return report
            time.sleep(0.3)
        raise TimeoutError(f"matcher did not answer /health; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL: no chance to commit, flush or clean up."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(
                f"matcher exited with {self.process.returncode}:\n{tail}"
            )


class Feed:
    """Publishes inputs and control commands; reads enrollments and statuses."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = Topics(settings)
        self.codec = Codec.load()
        self.producer = Producer(
            {
                **settings.kafka.librdkafka_config(),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 2,
                "partitioner": "murmur2_random",
            }
        )
        self._count = 0

    def profile(
        self,
        key: str,
        account: str,
        *,
        kind: str = "PERSON",
        email: str | None = None,
        owner: str | None = None,
        last_activity: datetime | None = None,
        updated: datetime | None = None,
        **fields: Any,
    ) -> None:
        record = {
            "key": key,
            "kind": kind,
            "account_key": account,
            "updated_at": updated or datetime.now(UTC),
            "deleted": False,
            "email": email,
            "owner": owner,
            "past_owners": [],
            "last_activity_at": last_activity,
            "fields": fields,
        }
        self.producer.produce(
            self.topics.name("profiles"),
            self.codec.encode("profile", record),
            key=key.encode(),
        )

    def signal(
        self,
        kind: str,
        account: str,
        person: str | None = None,
        *,
        signal_id: str | None = None,
        at: datetime | None = None,
    ) -> str:
        self._count += 1
        signal_id = signal_id or f"sig-{uuid.uuid4().hex[:12]}"
        record = {
            "signal_id": signal_id,
            "type": kind,
            "scope": "PERSON" if person else "COMPANY",
            "account_key": account,
            "person_key": person,
            "occurred_at": at or datetime.now(UTC),
            "source": "test",
            "attributes": {},
        }
        self.producer.produce(
            self.topics.name("signals"),
            self.codec.encode("signal", record),
            key=account.encode(),
        )
        return signal_id

    def raw(self, logical_topic: str, key: bytes, value: bytes) -> None:
        self.producer.produce(self.topics.name(logical_topic), value, key=key)

    def control(
        self,
        kind: str,
        workflow_id: str,
        version: int,
        *,
        timing: str | None = None,
        limit: int | None = None,
    ) -> str:
        """Write one copy of a command to every control partition, as the api does."""
        command_id = f"cmd-{uuid.uuid4().hex[:12]}"
        partitions = self.settings.default_partitions
        record = {
            "command_id": command_id,
            "kind": kind,
            "workflow_id": workflow_id,
            "workflow_version": version,
            "execution_timing": timing,
            "limit": limit,
            "issued_at": datetime.now(UTC),
            "partition_count": partitions,
        }
        value = self.codec.encode("control", record)
        for partition in range(partitions):
            self.producer.produce(
                self.topics.name("control"),
                value,
                key=command_id.encode(),
                partition=partition,
            )
        return command_id

    def flush(self) -> None:
        remaining = self.producer.flush(30)
        if remaining:
            raise TimeoutError(f"{remaining} records not acknowledged")

    def read(
        self,
        logical_topic: str,
        schema: str,
        *,
        until: int | None = None,
        quiet_s: float = 3.0,
        timeout_s: float = 60.0,
    ) -> list[Json]:
        """Every record of a topic from the start, until `until` were read and no
        more arrived for `quiet_s` (or nothing more for `quiet_s` when `until` is
        None)."""
        topic = self.topics.name(logical_topic)
        consumer = Consumer(
            {
                **self.settings.kafka.librdkafka_config(),
                "group.id": f"reader-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        partitions = self.settings.default_partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        records: list[Json] = []
        deadline = time.monotonic() + timeout_s
        last_seen = time.monotonic()
        try:
            while time.monotonic() < deadline:
                messages = consumer.consume(500, 0.3)
                fresh = [m for m in messages if m.error() is None]
                for message in fresh:
                    record = self.codec.decode(schema, message.value())
                    record["_partition"] = message.partition()
                    records.append(record)
                if fresh:
                    last_seen = time.monotonic()
                enough = until is None or len(records) >= until
                if enough and time.monotonic() - last_seen >= quiet_s:
                    break
        finally:
            consumer.close()
        return records

    def enrollments(self, **options: Any) -> list[Json]:
        return self.read("enrollments", "enrollment", **options)


def people_of(records: Iterable[Json], mode: str = "LIVE") -> list[str]:
    return sorted(r["person_key"] for r in records if r["mode"] == mode)
