"""Entry point of `signalflow run api`."""

import uvicorn

from services.api.app import create_app
from services.api.settings import ApiSettings
from signalflow.logs import configure_logging
from signalflow.settings import get_settings


def main() -> None:
    """Serve the api until SIGTERM or SIGINT; uvicorn drains open requests, then
    the application's lifespan stops its consumers and flushes its producers."""
    configure_logging("api")
    own = ApiSettings()
    app = create_app(get_settings(), own)
    uvicorn.run(app, host=own.host, port=own.port, log_config=None)
