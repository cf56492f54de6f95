"""The `signalflow` command: local infrastructure, topics, publishing, services."""

from __future__ import annotations

import typer

from signalflow.runner import run_app

app = typer.Typer(
    no_args_is_help=True,
    help="Signal-driven campaign workflows on Apache Kafka.",
)
app.add_typer(run_app, name="run")
