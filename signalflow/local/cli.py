"""`signalflow kafka ...` and `signalflow redis ...`: local infrastructure commands.

Each command reads the settings from the environment. When `KAFKA_BOOTSTRAP_SERVERS`
or `REDIS_URL` is set, the commands use that server and start or stop nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from rich.console import Console
from rich.table import Table

from signalflow.local.errors import LocalInfraError
from signalflow.local.kafka import LocalKafka, external_bootstrap
from signalflow.local.redis import (
    LocalRedis,
    answers_ping,
    external_redis_url,
)
from signalflow.settings import Settings

kafka_app = typer.Typer(
    no_args_is_help=True,
    help="Run a local Apache Kafka cluster (KRaft) for development and tests.",
)
redis_app = typer.Typer(
    no_args_is_help=True,
    help="Run a local Redis server for development and tests.",
)

_EXTERNAL_TIMEOUT_S = 5.0


def _out() -> Console:
    return Console(soft_wrap=True, highlight=False)


@contextmanager
def _reported_errors() -> Iterator[None]:
    # Errors a developer can fix (install java, free a port) end the command with
    # their message rather than a traceback.
    try:
        yield
    except (LocalInfraError, OSError, ValueError) as error:
        Console(stderr=True, soft_wrap=True, highlight=False).print(
            f"[red]error:[/red] {error}"
        )
        raise typer.Exit(1) from error


def _local_kafka() -> LocalKafka:
    return LocalKafka(Settings().state_dir)


def _port_from_environment(field: str) -> int | None:
    # Only a port the environment sets explicitly overrides the default, so a
    # plain `start` still finds a cluster already running on another port.
    settings = Settings()
    if field not in settings.model_fields_set:
        return None
    port: int = getattr(settings, field)
    return port


@kafka_app.command("start")
def kafka_start(
    brokers: Annotated[
        int, typer.Option(min=1, help="Nodes, each broker and controller.")
    ] = 1,
    port: Annotated[
        int | None,
        typer.Option(
            help="Client port of the first node "
            "(default SIGNALFLOW_LOCAL_KAFKA_PORT, else 9092)."
        ),
    ] = None,
) -> None:
    """Start the local cluster unless it runs; print its bootstrap address."""
    out = _out()
    port = port or _port_from_environment("local_kafka_port")
    external = external_bootstrap()
    if external is not None:
        out.print(f"KAFKA_BOOTSTRAP_SERVERS is set: using {external}; started nothing")
        return

    kafka = _local_kafka()
    with _reported_errors():
        if kafka.status().complete:
            out.print(f"Kafka already runs at {kafka.start(brokers, port)}")
            return
        out.print(f"Starting {brokers} Kafka node(s)...")
        bootstrap = kafka.start(brokers, port)
    out.print(f"Kafka runs at {bootstrap}")


@kafka_app.command("stop")
def kafka_stop() -> None:
    """Stop the recorded local nodes (SIGTERM, then SIGKILL after a grace period)."""
    out = _out()
    external = external_bootstrap()
    if external is not None:
        out.print(f"KAFKA_BOOTSTRAP_SERVERS is set: using {external}; stopped nothing")
        return

    kafka = _local_kafka()
    status = kafka.status()
    if not status.nodes:
        out.print("No local Kafka is recorded; nothing to stop")
        return
    with _reported_errors():
        kafka.stop()
    pids = [node.pid for node in status.nodes if node.alive]
    if not pids:
        out.print(f"Kafka at {status.bootstrap} was not running; cleared its record")
        return
    out.print(f"Stopped Kafka at {status.bootstrap} (pids {pids})")


@kafka_app.command("status")
def kafka_status() -> None:
    """Show what runs; exit 1 when no cluster answers."""
    out = _out()
    external = external_bootstrap()
    if external is not None:
        _report_external_kafka(out, external)
        return

    status = _local_kafka().status()
    if not status.nodes:
        out.print("Kafka: not running (nothing recorded)")
        raise typer.Exit(1)
    table = Table("node", "address", "controller", "pid", "state")
    table.add_column("log", overflow="fold")
    for node in status.nodes:
        state = "[green]running[/green]" if node.alive else "[red]stopped[/red]"
        table.add_row(
            str(node.node_id),
            node.address,
            str(node.controller_port),
            str(node.pid),
            state,
            str(node.log),
        )
    out.print(f"Kafka at {status.bootstrap}")
    out.print(table)
    if not status.running:
        raise typer.Exit(1)


@kafka_app.command("fetch")
def kafka_fetch() -> None:
    """Fetch the broker's jars into the cache (Maven), unless already there."""
    with _reported_errors():
        libs = _local_kafka().fetch()
    _out().print(f"Kafka jars in {libs}")


def _report_external_kafka(out: Console, bootstrap: str) -> None:
    admin = AdminClient(
        {**Settings().kafka.librdkafka_config(), "bootstrap.servers": bootstrap}
    )
    try:
        metadata = admin.list_topics(timeout=_EXTERNAL_TIMEOUT_S)
    except KafkaException as error:
        out.print(f"Kafka at {bootstrap} (KAFKA_BOOTSTRAP_SERVERS): not answering")
        raise typer.Exit(1) from error
    out.print(
        f"Kafka at {bootstrap} (KAFKA_BOOTSTRAP_SERVERS): "
        f"{len(metadata.brokers)} broker(s) answer"
    )


@redis_app.command("start")
def redis_start(
    port: Annotated[
        int | None,
        typer.Option(
            help="Port to listen on (default SIGNALFLOW_LOCAL_REDIS_PORT, else 6379)."
        ),
    ] = None,
) -> None:
    """Start the local Redis server unless it runs; print its URL."""
    out = _out()
    port = port or _port_from_environment("local_redis_port")
    external = external_redis_url()
    if external is not None:
        out.print(f"REDIS_URL is set: using {external}; started nothing")
        return

    redis = LocalRedis(Settings().state_dir)
    with _reported_errors():
        if redis.status().alive:
            out.print(f"Redis already runs at {redis.start(port)}")
            return
        url = redis.start(port)
    out.print(f"Redis runs at {url}")


@redis_app.command("stop")
def redis_stop() -> None:
    """Stop the recorded local Redis server."""
    out = _out()
    external = external_redis_url()
    if external is not None:
        out.print(f"REDIS_URL is set: using {external}; stopped nothing")
        return

    redis = LocalRedis(Settings().state_dir)
    status = redis.status()
    if status.url is None:
        out.print("No local Redis is recorded; nothing to stop")
        return
    with _reported_errors():
        redis.stop()
    if not status.alive:
        out.print(f"Redis at {status.url} was not running; cleared its record")
        return
    out.print(f"Stopped Redis at {status.url} (pid {status.pid})")


@redis_app.command("status")
def redis_status() -> None:
    """Show whether the local Redis server runs; exit 1 when it does not."""
    out = _out()
    external = external_redis_url()
    if external is not None:
        if not answers_ping(external):
            out.print(f"Redis at {external} (REDIS_URL): not answering")
            raise typer.Exit(1)
        out.print(f"Redis at {external} (REDIS_URL): answers")
        return

    status = LocalRedis(Settings().state_dir).status()
    if not status.alive:
        out.print("Redis: not running")
        raise typer.Exit(1)
    out.print(f"Redis runs at {status.url} (pid {status.pid}, log {status.log})")
