"""The `signalflow` command: local infrastructure, topics, publishing, services."""

from __future__ import annotations

from typing import Annotated

import typer

from signalflow.contracts.cli import publish_app
from signalflow.emulators.cli import emulators_app
from signalflow.kafka.cli import topics_app
from signalflow.local.cli import kafka_app, redis_app
from signalflow.runner import run_app
from signalflow.settings import get_settings

app = typer.Typer(
    no_args_is_help=True,
    help="Signal-driven campaign workflows on Apache Kafka.",
)
app.add_typer(kafka_app, name="kafka")
app.add_typer(redis_app, name="redis")
app.add_typer(topics_app, name="topics")
app.add_typer(publish_app, name="publish")
app.add_typer(run_app, name="run")
app.add_typer(emulators_app, name="emulators")


@app.command("settings")
def list_settings() -> None:
    """List every environment variable the services read, with its default."""
    from rich.console import Console
    from rich.table import Table

    from signalflow.settings_catalog import variables

    table = Table(title="signalflow settings")
    for column in ("read by", "variable", "default", "meaning"):
        table.add_column(column)
    for variable in variables():
        table.add_row(
            variable.group, variable.name, variable.default, variable.description
        )
    Console().print(table)


@app.command()
def up(
    emulators: Annotated[
        bool,
        typer.Option(help="Also start the local stand-ins of the SaaS APIs."),
    ] = True,
) -> None:
    """Start Kafka, Redis and every service; Ctrl-C or SIGTERM stops them all."""
    from signalflow.stack import run_stack

    run_stack(get_settings(), emulators=emulators)
