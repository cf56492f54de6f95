"""`signalflow publish signals|profiles FILE.jsonl`: JSON lines to Kafka, validated.

Mounted by the root CLI as `signalflow publish`. Connection settings and the topic
prefix come from the environment (`KAFKA_*`, `SIGNALFLOW_TOPIC_PREFIX`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from signalflow.contracts.publish import PublishKind, PublishReport, publish_lines
from signalflow.contracts.serde import Codec
from signalflow.kafka.clients import make_producer
from signalflow.settings import Settings
from signalflow.topics import Topics

publish_app = typer.Typer(
    no_args_is_help=True,
    help="Validate JSON-lines files and publish them as Avro to Kafka.",
)

FileArgument = Annotated[
    Path,
    typer.Argument(
        exists=True,
        dir_okay=False,
        readable=True,
        help="One JSON object per line.",
    ),
]


@publish_app.command("signals")
def publish_signals(file: FileArgument) -> None:
    """Publish signals, keyed by account_key, to the signals topic."""
    _publish(PublishKind.SIGNALS, file)


@publish_app.command("profiles")
def publish_profiles(file: FileArgument) -> None:
    """Publish person and account profiles, keyed by key, to the profiles topic."""
    _publish(PublishKind.PROFILES, file)


def _publish(kind: PublishKind, file: Path) -> None:
    """Publish the good lines, report the bad ones, exit 1 if any line failed."""
    settings = Settings()
    topic = Topics(settings).name(kind.value)
    producer = make_producer(settings)
    with file.open(encoding="utf-8") as lines:
        report = publish_lines(
            lines, kind=kind, topic=topic, producer=producer, codec=Codec.load()
        )
    _print_report(kind, report, Console(stderr=True))
    if not report.ok:
        raise typer.Exit(code=1)


def _print_report(kind: PublishKind, report: PublishReport, console: Console) -> None:
    if report.rejected:
        table = Table(title=f"Rejected {kind}", title_justify="left")
        table.add_column("line", justify="right", style="bold")
        table.add_column("field")
        table.add_column("problem")
        for line in report.rejected:
            for problem in line.problems:
                table.add_row(
                    str(line.line_number),
                    escape(problem.path or "-"),
                    escape(problem.message),
                )
        console.print(table)
    for failure in report.delivery_failures:
        console.print(f"[red]Kafka did not take a message:[/red] {escape(failure)}")
    colour = "green" if report.ok else "yellow"
    console.print(
        f"[{colour}]Published {report.published} {kind} to {report.topic}; "
        f"rejected {len(report.rejected)} lines.[/{colour}]"
    )
