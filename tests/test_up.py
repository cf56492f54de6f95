"""`signalflow up` brings every process up and leaves none behind after SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from signalflow.local.ports import free_port_block
from signalflow.topics import ActionType

START_TIMEOUT_S = 180.0


def descendants(root: int) -> set[int]:
    """Every live process whose chain of parents reaches `root`."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces; the parent pid follows its ')'.
        parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier}
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_healthy(urls: list[str], process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    pending = list(urls)
    with httpx.Client(timeout=1.0) as client:
        while pending:
            if process.poll() is not None:
                raise AssertionError(f"signalflow up exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise AssertionError(f"never healthy: {pending}")
            pending = [url for url in pending if not _healthy(client, url)]
            time.sleep(0.5)


def _healthy(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).status_code == 200
    except httpx.HTTPError:
        return False


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop `up` as a user would, so that it stops its children, then for good."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.mark.slow
def test_up_then_sigterm_leaves_no_process_behind(
    tmp_path: Path, state_dir: Path
) -> None:
    api, metrics, matcher, dispatcher = (free_port_block(1) for _ in range(4))
    actions_base = free_port_block(len(ActionType))
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "SIGNALFLOW_API_TOKENS")
    }
    env.update(
        SIGNALFLOW_STATE_DIR=str(state_dir),
        SIGNALFLOW_LOCAL_KAFKA_PORT=str(free_port_block(2)),
        SIGNALFLOW_LOCAL_REDIS_PORT=str(free_port_block(1)),
        SIGNALFLOW_MATCHER_DATA_DIR=str(tmp_path / "matcher"),
        SIGNALFLOW_API_PORT=str(api),
        SIGNALFLOW_METRICS_PORT=str(metrics),
        SIGNALFLOW_MATCHER_PORT=str(matcher),
        SIGNALFLOW_DISPATCHER_PORT=str(dispatcher),
        SIGNALFLOW_ACTIONS_BASE_PORT=str(actions_base),
    )
    health = [
        f"http://127.0.0.1:{port}/health"
        for port in (api, metrics, matcher, dispatcher)
    ] + [
        f"http://127.0.0.1:{actions_base + index}/health"
        for index in range(len(ActionType))
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "signalflow", "up", "--no-emulators"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(health, process)
        started = descendants(process.pid)
        # With no token configured, `up` minted one for the api and wrote it down.
        token = (state_dir / "api-token").read_text().strip()
        audiences = httpx.get(
            f"http://127.0.0.1:{api}/audiences",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert audiences.status_code == 200
        # Kafka, Redis and 13 services (4 + one per action type) at least.
        assert len(started) >= 2 + 4 + len(ActionType)

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0
    finally:
        stop(process)

    assert [pid for pid in started if alive(pid)] == []
