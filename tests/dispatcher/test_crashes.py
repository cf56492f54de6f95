"""SIGKILL the dispatcher and each delay relay, over and over, while 5,000 runs with
delays go through: every run completes, and a step command issued twice is one
that was produced just before a kill and produced again after the restart."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dispatcher_harness import (
    FakeActions,
    TopicWatcher,
    enrollment,
    now_ms,
    produce_enrollments,
    workflow,
)

from signalflow.contracts import Codec
from signalflow.definitions import DefinitionLog
from signalflow.settings import Settings
from signalflow.topics import ActionType

RUNS = 5_000
KILL_EVERY_S = 2.5
RESTART_AFTER_S = 0.3
#: How long before a kill a record may have been produced and still be produced
#: again: the auto-commit interval (1 s), the batch in hand and the acks.
REDELIVERY_WINDOW_MS = 5_000
SIGNALFLOW = str(Path(sys.executable).with_name("signalflow"))

ROLES = {
    "dispatcher": ["run", "dispatcher"],
    "relay-1s": ["run", "relay", "--tier", "1s"],
    "relay-10s": ["run", "relay", "--tier", "10s"],
    "relay-rest": ["run", "relay", "--tier", "1m", "--tier", "10m", "--tier", "1h"],
}


@dataclass
class Process:
    """One `signalflow run ...` child, restarted under the same instance id."""

    role: str
    settings: Settings
    logs: Path
    child: subprocess.Popen[bytes] | None = None
    kills: list[int] = field(default_factory=list)

    def start(self) -> None:
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.settings.kafka.bootstrap_servers,
            "REDIS_URL": self.settings.redis.url,
            "SIGNALFLOW_TOPIC_PREFIX": self.settings.topic_prefix,
            "SIGNALFLOW_DISPATCHER_RELAYS": "none",
            "SIGNALFLOW_DISPATCHER_PORT": "0",
            "SIGNALFLOW_DISPATCHER_RELAY_PORT": "0",
            "SIGNALFLOW_DISPATCHER_INSTANCE_ID": f"crash-{self.role}",
        }
        with (self.logs / f"{self.role}.log").open("ab") as log:
            self.child = subprocess.Popen(
                [SIGNALFLOW, *ROLES[self.role]], env=env, stdout=log, stderr=log
            )

    def kill(self) -> None:
        if self.child is not None:
            self.child.send_signal(signal.SIGKILL)
            self.child.wait(10)
            self.kills.append(now_ms())

    def stop(self) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)
            try:
                self.child.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def processes(settings: Settings, tmp_path: Path) -> Iterator[dict[str, Process]]:
    children = {role: Process(role, settings, tmp_path) for role in ROLES}
    try:
        yield children
    finally:
        for child in children.values():
            child.stop()


async def kill_in_turn(processes: dict[str, Process], done: asyncio.Event) -> None:
    """SIGKILL each process in turn every KILL_EVERY_S and start it again."""
    order = list(processes.values())
    turn = 0
    while not done.is_set():
        await asyncio.sleep(KILL_EVERY_S)
        victim = order[turn % len(order)]
        turn += 1
        victim.kill()
        await asyncio.sleep(RESTART_AFTER_S)
        victim.start()


@pytest.mark.slow
async def test_runs_complete_through_sigkills_with_duplicates_only_at_kills(
    settings: Settings,
    definitions: DefinitionLog,
    codec: Codec,
    processes: dict[str, Process],
) -> None:
    steps = [
        {"kind": "crm_upsert"},
        {"kind": "delay", "params": {"seconds": 2}},
        {"kind": "ai_message"},
    ]
    longer = [*steps[:1], {"kind": "delay", "params": {"seconds": 12}}, *steps[2:]]
    short = await definitions.save(workflow("short-wait", steps))
    long = await definitions.save(workflow("long-wait", longer))
    runs = [f"run-{n}" for n in range(RUNS)]
    for child in processes.values():
        child.start()

    done = asyncio.Event()
    started = time.monotonic()
    with (
        FakeActions(
            settings, [ActionType.CRM_UPSERT, ActionType.AI_MESSAGE]
        ) as actions,
        TopicWatcher(settings, "runs", "run") as ended,
    ):
        produce_enrollments(
            settings,
            codec,
            (
                enrollment(run, "long-wait", long)
                if n % 4 == 0
                else enrollment(run, "short-wait", short)
                for n, run in enumerate(runs)
            ),
        )
        killer = asyncio.create_task(kill_in_turn(processes, done))
        try:
            while len({r["run_id"] for r in ended.snapshot()}) < RUNS:
                assert time.monotonic() - started < 110, "runs did not complete"
                await asyncio.sleep(0.5)
        finally:
            done.set()
            await killer
        received = actions.snapshot()
        duplicates = actions.duplicates()

    # Every run completed, each step taken in order.
    assert {r["run_id"] for r in ended.snapshot()} == set(runs)
    steps_by_run: dict[str, list[str]] = {}
    for item in received:
        taken = steps_by_run.setdefault(item.run_id, [])
        if item.step_id not in taken:
            taken.append(item.step_id)
    assert all(steps_by_run[run] == ["0", "2"] for run in runs)

    # One effect per step: one idempotency key per (run, step), whatever the copies.
    keys = {(r.run_id, r.step_id): set() for r in received}
    for item in received:
        keys[(item.run_id, item.step_id)].add(item.idempotency_key)
    assert all(len(found) == 1 for found in keys.values())
    assert len(keys) == 2 * RUNS

    # Duplicates are copies of a record produced shortly before some kill.
    kills = sorted(k for child in processes.values() for k in child.kills)
    assert len(kills) >= len(processes)
    first_copies = {}
    for item in received:
        first_copies.setdefault((item.run_id, item.step_id, item.attempt), item)
    unexplained = [
        key
        for key in duplicates
        if not any(
            kill - REDELIVERY_WINDOW_MS <= first_copies[key].produced_ms <= kill + 1_000
            for kill in kills
        )
    ]
    print(
        f"{len(kills)} kills, {sum(duplicates.values()) - len(duplicates)} duplicate "
        f"commands of {len(received)}, {time.monotonic() - started:.1f}s"
    )
    assert not unexplained, f"duplicates away from any kill: {unexplained[:5]}"
