"""`signalflow topics ...`: create, correct and list the cluster's topics."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from signalflow.kafka.admin import (
    ExistingTopic,
    TopicAdminError,
    admin_client,
    describe_topics,
    ensure_topics,
)
from signalflow.settings import Settings
from signalflow.topics import ResolvedTopic, Topics

topics_app = typer.Typer(
    no_args_is_help=True,
    help="Create, correct and list the topics of the topic table.",
)


def _out() -> Console:
    return Console(soft_wrap=True, highlight=False)


@contextmanager
def _reported_errors() -> Iterator[None]:
    try:
        yield
    except TopicAdminError as error:
        Console(stderr=True, soft_wrap=True, highlight=False).print(
            f"[red]error:[/red] {error}"
        )
        raise typer.Exit(1) from error


@topics_app.command("ensure")
def ensure(
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Report what would change; change nothing."),
    ] = False,
) -> None:
    """Create missing topics, add missing partitions, correct differing configs."""
    settings = Settings()
    with _reported_errors():
        changes = ensure_topics(settings, dry_run=dry_run)
    out = _out()
    for line in changes.summary():
        out.print(line, markup=False)


@topics_app.command("list")
def list_topics() -> None:
    """Show every topic of the table and how the cluster has it."""
    settings = Settings()
    wanted = Topics(settings).all()
    with _reported_errors():
        existing = describe_topics(admin_client(settings), wanted)

    table = Table("topic", "partitions", "replication", "exists")
    table.add_column("configs", overflow="fold")
    for topic in wanted:
        table.add_row(*_row(topic, existing.get(topic.full_name)))
    out = _out()
    out.print(f"Topics at {settings.kafka.bootstrap_servers}")
    out.print(table)


def _row(topic: ResolvedTopic, current: ExistingTopic | None) -> tuple[str, ...]:
    if current is None:
        configs = ", ".join(f"{k}={v}" for k, v in sorted(topic.configs.items()))
        return (
            topic.full_name,
            str(topic.partitions),
            str(topic.replication_factor),
            "[red]no[/red]",
            configs,
        )
    return (
        topic.full_name,
        _compared(current.partitions, topic.partitions),
        _compared(current.replication_factor, topic.replication_factor),
        "[green]yes[/green]",
        _configs(topic, current),
    )


def _compared(actual: int, wanted: int) -> str:
    if actual == wanted:
        return str(actual)
    return f"[yellow]{actual}[/yellow] (table: {wanted})"


def _configs(topic: ResolvedTopic, current: ExistingTopic) -> str:
    cells = []
    for key, value in sorted(topic.configs.items()):
        actual = current.configs.get(key)
        if actual == value:
            cells.append(f"{key}={value}")
        else:
            cells.append(f"[yellow]{key}={actual}[/yellow] (table: {value})")
    return ", ".join(cells)
