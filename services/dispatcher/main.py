"""Entry point of `signalflow run dispatcher`."""

import asyncio

from services.dispatcher.service import Dispatcher
from services.dispatcher.settings import DispatcherSettings
from signalflow.logs import configure_logging
from signalflow.service import serve
from signalflow.settings import get_settings


def main() -> None:
    """Run the dispatcher in the foreground until SIGTERM or SIGINT."""
    configure_logging("dispatcher")
    own = DispatcherSettings()
    asyncio.run(serve(Dispatcher(get_settings()), host=own.host, port=own.port))
