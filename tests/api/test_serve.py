"""`signalflow run api` serves from the environment's settings and stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from api_harness import TOKEN, environment

from signalflow.kafka.admin import delete_topics
from signalflow.local import free_port_block

SIGNALFLOW = Path(sys.executable).with_name("signalflow")


def test_the_api_runs_from_the_command_line_and_stops_on_sigterm(
    kafka_bootstrap: str, redis_url: str
) -> None:
    settings = environment(kafka_bootstrap, redis_url)
    port = free_port_block(1)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "REDIS_URL": redis_url,
        "SIGNALFLOW_TOPIC_PREFIX": settings.topic_prefix,
        "SIGNALFLOW_API_PORT": str(port),
        "SIGNALFLOW_API_TOKENS": TOKEN,
    }
    process = subprocess.Popen(
        [str(SIGNALFLOW), "run", "api"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_until_healthy(base_url, process)
        listed = httpx.get(
            f"{base_url}/audiences", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        refused = httpx.get(f"{base_url}/audiences")

        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        delete_topics(settings)

    assert listed.status_code == 200 and listed.json() == []
    assert refused.status_code == 401
    assert process.returncode == 0, output
    assert "definition log stopped" in output
    assert TOKEN not in output


def wait_until_healthy(base_url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the api exited: {process.communicate()[0]}")
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the api did not become healthy within 60s")
