"""`signalflow kafka|redis start|stop|status`: real processes, recorded and stopped."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from confluent_kafka.admin import AdminClient
from typer.testing import CliRunner

from signalflow.local import MissingToolError, free_port_block
from signalflow.local.cli import kafka_app, redis_app
from signalflow.local.processes import ProcessRecord, record_from_json
from signalflow.local.tools import java_major_version, require_java

pytestmark = pytest.mark.slow


@pytest.fixture
def runner(state_dir: Path) -> Iterator[CliRunner]:
    """Runs the commands on `state_dir`, with no external servers named."""
    env: dict[str, str | None] = {
        "SIGNALFLOW_STATE_DIR": str(state_dir),
        "KAFKA_BOOTSTRAP_SERVERS": None,
        "REDIS_URL": None,
        "SIGNALFLOW_LOCAL_KAFKA_PORT": None,
        "SIGNALFLOW_LOCAL_REDIS_PORT": None,
        "COLUMNS": "200",
    }
    runner = CliRunner(env=env)
    yield runner
    # Whatever a failed assertion left running is stopped by its recorded pid.
    runner.invoke(kafka_app, ["stop"])
    runner.invoke(redis_app, ["stop"])


def _recorded(state_dir: Path, service: str) -> list[ProcessRecord]:
    state = json.loads((state_dir / service / "running.json").read_text())
    entries = [state] if service == "redis" else state["processes"]
    return [record_from_json(entry) for entry in entries]


def _recorded_pids(state_dir: Path, service: str) -> list[int]:
    return [record.pid for record in _recorded(state_dir, service)]


def test_kafka_start_is_idempotent_and_stop_stops_the_recorded_node(
    runner: CliRunner, state_dir: Path
) -> None:
    port = free_port_block(2)
    bootstrap = f"127.0.0.1:{port}"

    started = runner.invoke(kafka_app, ["start", "--port", str(port)])
    assert started.exit_code == 0, started.output
    assert f"Kafka runs at {bootstrap}" in started.output
    [node] = _recorded(state_dir, "kafka")
    pid = node.pid
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    assert list(metadata.brokers) == [1]

    again = runner.invoke(kafka_app, ["start"])
    assert again.exit_code == 0, again.output
    assert f"Kafka already runs at {bootstrap}" in again.output
    assert _recorded_pids(state_dir, "kafka") == [pid]

    refused = runner.invoke(kafka_app, ["start", "--brokers", "3"])
    assert refused.exit_code == 1
    assert "1-node cluster already runs" in refused.output
    assert _recorded_pids(state_dir, "kafka") == [pid]

    status = runner.invoke(kafka_app, ["status"])
    assert status.exit_code == 0, status.output
    assert str(pid) in status.output and "running" in status.output

    stopped = runner.invoke(kafka_app, ["stop"])
    assert stopped.exit_code == 0, stopped.output
    assert f"Stopped Kafka at {bootstrap} (pids [{pid}])" in stopped.output
    # Pid and start time: with pids wrapping at 32768, the bare pid may already
    # name another process's thread.
    assert not node.is_alive()

    after = runner.invoke(kafka_app, ["status"])
    assert after.exit_code == 1
    assert "not running" in after.output


def test_kafka_commands_use_the_cluster_the_environment_names(
    runner: CliRunner, state_dir: Path, kafka_bootstrap: str
) -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}

    started = runner.invoke(kafka_app, ["start"], env=env)
    status = runner.invoke(kafka_app, ["status"], env=env)

    assert started.exit_code == 0, started.output
    assert f"using {kafka_bootstrap}; started nothing" in started.output
    assert not (state_dir / "kafka" / "running.json").exists()
    assert status.exit_code == 0, status.output
    assert "broker(s) answer" in status.output


def test_kafka_stop_leaves_a_process_whose_pid_was_reused_alone(
    runner: CliRunner, state_dir: Path
) -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        # A record naming the bystander's pid with another start time: what a pid
        # handed to a new program after the broker died looks like.
        state = {
            "brokers": 1,
            "port": 9092,
            "bootstrap": "127.0.0.1:9092",
            "processes": [{"node_id": 1, "pid": bystander.pid, "start_time": 1}],
        }
        (state_dir / "kafka").mkdir()
        (state_dir / "kafka" / "running.json").write_text(json.dumps(state))

        stopped = runner.invoke(kafka_app, ["stop"])

        assert stopped.exit_code == 0, stopped.output
        assert "was not running; cleared its record" in stopped.output
        assert bystander.poll() is None
        assert not (state_dir / "kafka" / "running.json").exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_kafka_start_without_java_names_the_package_to_install(
    runner: CliRunner, tmp_path: Path
) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir()

    result = runner.invoke(kafka_app, ["start"], env={"PATH": str(empty)})

    assert result.exit_code == 1
    assert "apt-get install openjdk-17-jre-headless" in result.output


def test_java_older_than_17_is_refused_with_the_package_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    java = tmp_path / "java"
    java.write_text("#!/bin/sh\necho 'java version \"1.8.0_402\"' >&2\n")
    java.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))

    assert java_major_version(str(java)) == 8
    with pytest.raises(MissingToolError, match="openjdk-17-jre-headless"):
        require_java()


def test_redis_start_is_idempotent_and_stop_stops_the_recorded_server(
    runner: CliRunner, state_dir: Path
) -> None:
    port = free_port_block(1)
    url = f"redis://127.0.0.1:{port}/0"

    started = runner.invoke(redis_app, ["start", "--port", str(port)])
    assert started.exit_code == 0, started.output
    assert f"Redis runs at {url}" in started.output
    [server] = _recorded(state_dir, "redis")
    pid = server.pid
    with redis.Redis.from_url(url) as client:
        assert client.ping()
        assert client.config_get("save") == {"save": ""}

    again = runner.invoke(redis_app, ["start"])
    assert f"Redis already runs at {url}" in again.output
    assert _recorded_pids(state_dir, "redis") == [pid]
    assert runner.invoke(redis_app, ["status"]).exit_code == 0

    stopped = runner.invoke(redis_app, ["stop"])
    assert f"Stopped Redis at {url} (pid {pid})" in stopped.output
    assert not server.is_alive()
    assert runner.invoke(redis_app, ["status"]).exit_code == 1


def test_redis_start_without_redis_server_names_the_package(
    runner: CliRunner, tmp_path: Path
) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir()

    result = runner.invoke(redis_app, ["start"], env={"PATH": str(empty)})

    assert result.exit_code == 1
    assert "apt-get install redis-server" in result.output
