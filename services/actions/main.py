"""Entry point of `signalflow run action --type <type>`."""

import asyncio

from services.actions.service import ActionService
from services.actions.settings import ActionSettings
from signalflow.logs import configure_logging
from signalflow.service import serve
from signalflow.settings import get_settings
from signalflow.topics import ActionType


def main(action: ActionType) -> None:
    """Run the action service of `action` until SIGTERM or SIGINT."""
    configure_logging(f"action-{action}")
    own = ActionSettings()
    service = ActionService(get_settings(), action, own=own)
    asyncio.run(serve(service, host=own.host, port=own.port_for(action)))
