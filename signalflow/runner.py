"""`signalflow run <service>`: one service in the foreground.

Service modules are imported only when chosen, so running the api does not load
faust and running an action does not load FastAPI.
"""

from __future__ import annotations

from typing import Annotated

import typer

from signalflow.topics import ActionType

run_app = typer.Typer(
    no_args_is_help=True,
    help="Run one service in the foreground until Ctrl-C or SIGTERM.",
)


@run_app.command()
def matcher() -> None:
    """Evaluate audiences continuously and emit enrollments."""
    from services.matcher.main import main

    main()


@run_app.command()
def dispatcher() -> None:
    """Move runs from step to step."""
    from services.dispatcher.main import main

    main()


@run_app.command()
def relay(
    tiers: Annotated[
        list[str] | None,
        typer.Option(
            "--tier",
            help="A delay tier to relay (1s, 10s, 1m, 10m, 1h, 10h); repeat it for "
            "several. All tiers when omitted.",
        ),
    ] = None,
) -> None:
    """Forward the waits of delay tiers when they are due."""
    from services.dispatcher.main import relay_main

    relay_main(tiers or [])


@run_app.command()
def metrics() -> None:
    """Keep and serve the monitoring figures."""
    from services.metrics.main import main

    main()


@run_app.command()
def api() -> None:
    """Serve the control-plane HTTP api."""
    from services.api.main import main

    main()


@run_app.command()
def action(
    action_type: Annotated[
        ActionType,
        typer.Option("--type", help="The action type this service performs."),
    ],
) -> None:
    """Perform the steps of one action type."""
    from services.actions.main import main

    main(action_type)
