"""`signalflow up`: the whole system on one machine, each service its own process.

Starts (or reuses, when the environment names them) Kafka and Redis, creates the
topics, starts the SaaS stand-ins and every service, and shows each one's state as
it comes up. On Ctrl-C or SIGTERM it stops every process it started, by process id,
and waits until they are gone.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table

from signalflow.kafka.admin import ensure_topics
from signalflow.local.processes import ProcessRecord, spawn, stop_all
from signalflow.settings import Settings
from signalflow.topics import ActionType

log = logging.getLogger(__name__)

STOP_GRACE_S = 20.0


@dataclass(frozen=True)
class ServiceProcess:
    """One process of the stack: how to start it and where it reports health."""

    name: str
    argv: tuple[str, ...]
    health_url: str | None


@dataclass
class RunningService:
    spec: ServiceProcess
    record: ProcessRecord
    state: str = "starting"
    since: float = field(default_factory=time.monotonic)


def default_services() -> list[ServiceProcess]:
    """Every service of the design, with the health port its settings default to."""
    from services.actions.settings import ActionSettings
    from services.api.settings import ApiSettings
    from services.dispatcher.settings import DispatcherSettings
    from services.matcher.settings import MatcherSettings
    from services.metrics.settings import MetricsSettings

    def health(host: str, port: int) -> str:
        return f"http://{host}:{port}/health"

    cli = (sys.executable, "-m", "signalflow")
    api, metrics = ApiSettings(), MetricsSettings()
    matcher, dispatcher = MatcherSettings(), DispatcherSettings()
    actions = ActionSettings()
    services = [
        ServiceProcess("emulators", (*cli, "emulators", "serve"), None),
        ServiceProcess("api", (*cli, "run", "api"), health(api.host, api.port)),
        ServiceProcess(
            "metrics", (*cli, "run", "metrics"), health(metrics.host, metrics.port)
        ),
        ServiceProcess(
            "matcher", (*cli, "run", "matcher"), health(matcher.host, matcher.port)
        ),
        ServiceProcess(
            "dispatcher",
            (*cli, "run", "dispatcher"),
            health(dispatcher.host, dispatcher.port),
        ),
    ]
    services += [
        ServiceProcess(
            f"action {action}",
            (*cli, "run", "action", "--type", str(action)),
            health(actions.host, actions.port_for(action)),
        )
        for action in ActionType
    ]
    return services


class Stack:
    """The processes `signalflow up` started, and how to stop them."""

    def __init__(self, settings: Settings, *, logs_dir: Path) -> None:
        self._settings = settings
        self._logs_dir = logs_dir
        self._running: list[RunningService] = []
        self._stop_infra: list[tuple[str, object]] = []

    def start_infrastructure(self, console: Console) -> dict[str, str]:
        """Start Kafka and Redis unless the environment names them; return the env.

        The returned variables point every service at the same cluster and server.
        """
        from signalflow.local.kafka import LocalKafka
        from signalflow.local.redis import LocalRedis

        env: dict[str, str] = {}
        if "KAFKA_BOOTSTRAP_SERVERS" in os.environ:
            env["KAFKA_BOOTSTRAP_SERVERS"] = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
            console.print(f"Kafka: using {env['KAFKA_BOOTSTRAP_SERVERS']}")
        else:
            kafka = LocalKafka(self._settings.state_dir)
            # A broker that ran before `up` belongs to someone else: use, not stop.
            was_running = kafka.status().running
            env["KAFKA_BOOTSTRAP_SERVERS"] = kafka.start(
                port=self._settings.local_kafka_port
            )
            if not was_running:
                self._stop_infra.append(("kafka", kafka))
            verb = "using" if was_running else "started at"
            console.print(f"Kafka: {verb} {env['KAFKA_BOOTSTRAP_SERVERS']}")
        if "REDIS_URL" in os.environ:
            env["REDIS_URL"] = os.environ["REDIS_URL"]
            console.print(f"Redis: using {env['REDIS_URL']}")
        else:
            redis = LocalRedis(self._settings.state_dir)
            was_running = redis.status().alive
            env["REDIS_URL"] = redis.start(port=self._settings.local_redis_port)
            if not was_running:
                self._stop_infra.append(("redis", redis))
            verb = "using" if was_running else "started at"
            console.print(f"Redis: {verb} {env['REDIS_URL']}")
        return env

    def api_token(self, env: dict[str, str], console: Console) -> None:
        """Make sure the api has a bearer token; mint one for this stack if none.

        A minted token is printed and written to `<state dir>/api-token`.
        """
        if os.environ.get("SIGNALFLOW_API_TOKENS"):
            return
        token = secrets.token_urlsafe(24)
        env["SIGNALFLOW_API_TOKENS"] = token
        path = self._settings.state_dir / "api-token"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(token + "\n")
        path.chmod(0o600)
        console.print(f"API token (also in {path}): {token}")

    def ensure_topics(self, env: dict[str, str], console: Console) -> None:
        settings = self._settings.model_copy(
            update={
                "kafka": self._settings.kafka.model_copy(
                    update={"bootstrap_servers": env["KAFKA_BOOTSTRAP_SERVERS"]}
                )
            }
        )
        changes = ensure_topics(settings)
        for line in changes.summary():
            console.print(f"Topics: {line}")

    def start_services(
        self, services: Sequence[ServiceProcess], env: dict[str, str]
    ) -> None:
        """Spawn each service with the shared environment; returns at once."""
        # Children inherit this process's environment: it now names the cluster
        # and server every service must share.
        os.environ.update(env)
        for spec in services:
            record = spawn(spec.argv, output=self._log_of(spec))
            self._running.append(RunningService(spec, record))

    def _log_of(self, spec: ServiceProcess) -> Path:
        return self._logs_dir / f"{spec.name.replace(' ', '-')}.log"

    def refresh(self, client: httpx.Client) -> None:
        """Update each service's state from its process and its health endpoint."""
        for service in self._running:
            service.state = _probe(service, client)

    def table(self) -> Table:
        table = Table(title="signalflow", expand=False)
        for column in ("service", "pid", "state", "log"):
            table.add_column(column)
        colours = {"running": "green", "starting": "yellow"}
        for service in self._running:
            colour = colours.get(service.state, "red")
            table.add_row(
                service.spec.name,
                str(service.record.pid),
                f"[{colour}]{service.state}[/]",
                str(self._log_of(service.spec)),
            )
        return table

    def stop(self, console: Console) -> None:
        """Stop every service, then the infrastructure this stack started."""
        stop_all([service.record for service in self._running], grace_s=STOP_GRACE_S)
        console.print(f"Stopped {len(self._running)} services.")
        self._running.clear()
        for name, process in reversed(self._stop_infra):
            process.stop()  # type: ignore[attr-defined]
            console.print(f"Stopped {name}.")
        self._stop_infra.clear()


def _probe(service: RunningService, client: httpx.Client) -> str:
    if not service.record.is_alive():
        return "exited"
    if service.spec.health_url is None:
        return "running"
    try:
        response = client.get(service.spec.health_url, timeout=0.5)
    except httpx.HTTPError:
        return "starting"
    return "running" if response.status_code == 200 else "starting"


class _StopRequested(Exception):
    """Raised in the main thread when SIGTERM arrives."""


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise _StopRequested

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_stack(settings: Settings, *, emulators: bool = True) -> None:
    """Bring the stack up, show it until Ctrl-C or SIGTERM, then bring it down."""
    console = Console()
    stack = Stack(settings, logs_dir=settings.state_dir / "logs")
    services = [
        spec for spec in default_services() if emulators or spec.name != "emulators"
    ]
    with _sigterm_raises():
        try:
            env = stack.start_infrastructure(console)
            stack.ensure_topics(env, console)
            stack.api_token(env, console)
            stack.start_services(services, env)
            with httpx.Client() as client, Live(console=console) as live:
                while True:
                    stack.refresh(client)
                    live.update(stack.table())
                    time.sleep(0.5)
        except (KeyboardInterrupt, _StopRequested):
            console.print("Stopping...")
        finally:
            stack.stop(console)
