"""Entry point of `signalflow run api`."""

import signal
from types import FrameType

import uvicorn

from services.api.app import create_app
from services.api.settings import ApiSettings
from signalflow.logs import configure_logging
from signalflow.settings import get_settings


def main() -> None:
    """Serve the api until SIGTERM or SIGINT, then exit 0.

    uvicorn drains open requests, the application's lifespan stops its consumers
    and flushes its producers; then uvicorn raises the signal again for the
    handler that was installed before it, which here ends the process as a
    success, like every other signalflow service stopped on request.
    """
    configure_logging("api")
    own = ApiSettings()
    app = create_app(get_settings(), own)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_after_shutdown)
    uvicorn.run(app, host=own.host, port=own.port, log_config=None)


def _exit_after_shutdown(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)
