"""Entry point of `signalflow run api`."""

import uvicorn

from services.api.app import create_app
from services.api.settings import ApiSettings
from signalflow.logs import configure_logging


def main() -> None:
    """Serve the api until SIGTERM or SIGINT."""
    configure_logging("api")
    own = ApiSettings()
    uvicorn.run(create_app(), host=own.host, port=own.port, log_config=None)
