"""A local Redis server on loopback, without persistence, recorded like the broker.

Debian's `redis-server` runs in the foreground of its own session; its pid goes to
the state dir so that `stop` signals exactly that process.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from signalflow.local.errors import LocalInfraError, StartupError
from signalflow.local.ports import LOOPBACK, port_is_free
from signalflow.local.processes import (
    ProcessRecord,
    StateFile,
    exclusive,
    record_from_json,
    record_to_json,
    spawn,
    stop_all,
)
from signalflow.local.tools import REDIS_PACKAGE, require_program
from signalflow.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_PORT = 6379
REDIS_URL_ENV = "REDIS_URL"
_POLL_S = 0.1


@dataclass(frozen=True)
class RedisStatus:
    """The recorded server, checked against the live process."""

    url: str | None
    pid: int | None
    alive: bool
    log: Path | None


class LocalRedis:
    """Starts, watches and stops one `redis-server` recorded under `state_dir`.

    Args:
        state_dir: where the server's log and the record of its pid live.
        start_timeout_s: how long `start` waits for the server to answer PING.
        stop_grace_s: how long `stop` waits after SIGTERM before SIGKILL.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        start_timeout_s: float = 30.0,
        stop_grace_s: float = 10.0,
    ) -> None:
        self._home = state_dir / "redis"
        self._start_timeout_s = start_timeout_s
        self._stop_grace_s = stop_grace_s
        self._state = StateFile(self._home / "running.json")
        self._lock = self._home / ".lock"

    @property
    def log(self) -> Path:
        return self._home / "redis.log"

    def start(self, port: int | None = None) -> str:
        """Start the server on `port` (6379) unless it runs; return its URL.

        Idempotent: when it already runs, returns its URL at once. Waits until the
        server answers PING. Raises MissingToolError without `redis-server`,
        LocalInfraError when it runs on another port or the port is taken, and
        StartupError (after stopping it) when it exits or does not answer in time.
        """
        with exclusive(self._lock):
            running_port = self._running_port()
            if running_port is not None:
                return self._already_running(running_port, port)

            port = port or DEFAULT_PORT
            server = require_program(
                "redis-server", package=REDIS_PACKAGE, purpose="local Redis"
            )
            if not port_is_free(port):
                raise LocalInfraError(
                    f"expected port {port!r} free for Redis, but something listens "
                    "there; choose another with --port"
                )
            record = spawn(self._command(server, port), output=self.log)
            self._state.write({"port": port, **record_to_json(record)})
            url = _url(port)
            self._wait_until_ready(record, url)
            logger.info("Redis runs at %s", url)
            return url

    def stop(self) -> None:
        """Stop the recorded server and forget it; do nothing if none is recorded.

        Waits up to `stop_grace_s` after SIGTERM, then SIGKILLs it, and returns
        once it has exited.
        """
        with exclusive(self._lock):
            state = self._state.read()
            if state is None:
                return
            stop_all([record_from_json(state)], grace_s=self._stop_grace_s)
            self._state.clear()
            logger.info("stopped Redis at %s", _url(int(state["port"])))

    def status(self) -> RedisStatus:
        """Report the recorded server and whether its process is alive."""
        state = self._state.read()
        if state is None:
            return RedisStatus(url=None, pid=None, alive=False, log=None)
        record = record_from_json(state)
        return RedisStatus(
            url=_url(int(state["port"])),
            pid=record.pid,
            alive=record.is_alive(),
            log=self.log,
        )

    def _running_port(self) -> int | None:
        state = self._state.read()
        if state is None or not record_from_json(state).is_alive():
            return None
        return int(state["port"])

    def _already_running(self, running_port: int, port: int | None) -> str:
        if port not in (None, running_port):
            raise LocalInfraError(
                f"Redis already runs on port {running_port!r}; stop it before "
                f"starting one on port {port!r}"
            )
        url = _url(running_port)
        logger.info("Redis already runs at %s", url)
        return url

    def _command(self, server: str, port: int) -> list[str]:
        self._home.mkdir(parents=True, exist_ok=True)
        return [
            server,
            "--bind",
            LOOPBACK,
            "--port",
            str(port),
            # Nothing Redis holds for signalflow needs to survive a restart.
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(self._home),
        ]

    def _wait_until_ready(self, record: ProcessRecord, url: str) -> None:
        deadline = time.monotonic() + self._start_timeout_s
        while not answers_ping(url):
            if not record.is_alive():
                self._state.clear()
                raise StartupError(
                    f"redis-server exited while starting; see {str(self.log)!r}"
                )
            if time.monotonic() > deadline:
                stop_all([record], grace_s=self._stop_grace_s)
                self._state.clear()
                raise StartupError(
                    f"expected Redis at {url} to answer PING within "
                    f"{self._start_timeout_s:.0f}s; see {str(self.log)!r}"
                )
            time.sleep(_POLL_S)


def external_redis_url() -> str | None:
    """Return the server `REDIS_URL` names, or None when unset.

    When the environment names a server, nothing local is started.
    """
    return os.environ.get(REDIS_URL_ENV) or None


def ensure_redis(settings: Settings) -> str:
    """Return the environment's Redis URL, or start (or find) the local server.

    Waits for a local server to answer; raises what `LocalRedis.start` raises.
    """
    external = external_redis_url()
    if external is not None:
        return external
    return LocalRedis(settings.state_dir).start()


def _url(port: int) -> str:
    return f"redis://{LOOPBACK}:{port}/0"


def answers_ping(url: str) -> bool:
    """Return whether the Redis server at `url` answers PING within a second."""
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
    finally:
        client.close()
