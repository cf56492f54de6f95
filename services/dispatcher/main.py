"""Entry points of `signalflow run dispatcher` and `signalflow run relay`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from services.dispatcher.relay import RelayService
from services.dispatcher.service import Dispatcher
from services.dispatcher.settings import DispatcherSettings, parse_tiers
from signalflow.logs import configure_logging
from signalflow.service import serve
from signalflow.settings import get_settings


def main() -> None:
    """Run the dispatcher (and the relays its settings name) until SIGTERM."""
    configure_logging("dispatcher")
    own = DispatcherSettings()
    service = Dispatcher(get_settings(), own=own)
    asyncio.run(serve(service, host=own.host, port=own.port))


def relay_main(tiers: Sequence[str]) -> None:
    """Run the relays of `tiers` (labels such as '1s', or 'all') until SIGTERM.

    Raises ValueError naming an unknown tier label.
    """
    chosen = parse_tiers(",".join(tiers) or "all")
    labels = "-".join(tier.label for tier in chosen)
    configure_logging(f"relay-{labels}")
    own = DispatcherSettings()
    service = RelayService(get_settings(), chosen, own=own)
    asyncio.run(serve(service, host=own.host, port=own.relay_port))
