"""`signalflow emulators`: serve the SaaS stand-ins for the demo.

`serve` starts every emulator (or those named with `--only`) in this process
on the demo's fixed loopback ports, prints each base URL and the environment
that points the connectors at them, and runs until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from signalflow.emulators import demo
from signalflow.emulators.smtp import SmtpTlsMode
from signalflow.emulators.suite import (
    DEMO_PORTS,
    EMULATOR_NAMES,
    RunningEmulators,
    running_emulators,
)

emulators_app = typer.Typer(
    no_args_is_help=True,
    help="Local stand-ins of Salesforce, HubSpot, Slack, Outreach, Salesloft, "
    "an OpenAI-compatible model server and SMTP.",
)
console = Console()


@emulators_app.callback()
def emulators() -> None:
    """Local stand-ins of the SaaS APIs the action services call."""


@emulators_app.command()
def serve(
    only: Annotated[
        list[str] | None,
        typer.Option(help=f"Serve only these ({', '.join(EMULATOR_NAMES)})."),
    ] = None,
    free_ports: Annotated[
        bool, typer.Option(help="Pick free ports instead of the demo's fixed ones.")
    ] = False,
    smtp_tls: Annotated[
        str, typer.Option(help="starttls, implicit or none.")
    ] = "starttls",
    tls_dir: Annotated[
        Path | None,
        typer.Option(help="Where the TLS CA and certificate live (default: cache)."),
    ] = None,
) -> None:
    """Serve the emulators until interrupted; prints where each one listens."""
    names = tuple(only or ())
    unknown = sorted(set(names) - set(EMULATOR_NAMES))
    if unknown:
        raise typer.BadParameter(f"expected names from {EMULATOR_NAMES}, got {unknown}")
    if smtp_tls not in ("starttls", "implicit", "none"):
        raise typer.BadParameter(
            f"expected starttls, implicit or none, got {smtp_tls!r}"
        )
    mode: SmtpTlsMode = smtp_tls  # type: ignore[assignment]  # checked just above
    asyncio.run(
        _serve(
            names,
            ports={} if free_ports else DEMO_PORTS,
            tls_dir=tls_dir or demo.demo_tls_dir(),
            smtp_tls=mode,
        )
    )


async def _serve(
    names: tuple[str, ...],
    *,
    ports: dict[str, int],
    tls_dir: Path,
    smtp_tls: SmtpTlsMode,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with running_emulators(
        *names, ports=ports, tls_dir=tls_dir, smtp_tls=smtp_tls
    ) as running:
        _print_summary(running)
        await stop.wait()
        console.print("stopping the emulators")
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):
            loop.remove_signal_handler(signum)


def _print_summary(running: RunningEmulators) -> None:
    table = Table(title="emulators")
    table.add_column("emulator")
    table.add_column("base URL")
    table.add_column("control")
    for name, server in running.http.items():
        table.add_row(name, server.base_url, f"{server.origin}/_emulator/requests")
    if running.smtp is not None:
        control = f"{running.smtp.control.origin}/_emulator/requests"
        table.add_row("smtp", running.smtp.url, control)
    console.print(table)
    console.print("Connector environment:")
    for key, value in sorted(running.connector_env().items()):
        console.print(f"  {key}={value}", highlight=False, soft_wrap=True)
