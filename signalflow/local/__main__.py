"""`python -m signalflow.local kafka|redis ...`: the same commands without the root
CLI, for the Makefile and for machines where only this package is importable."""

from __future__ import annotations

import typer

from signalflow.local.cli import kafka_app, redis_app

app = typer.Typer(no_args_is_help=True, help="Local Kafka and Redis.")
app.add_typer(kafka_app, name="kafka")
app.add_typer(redis_app, name="redis")

if __name__ == "__main__":
    app()
