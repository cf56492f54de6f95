"""Entry point of `signalflow run metrics`."""

import asyncio

from services.metrics.service import MetricsService
from services.metrics.settings import MetricsSettings
from signalflow.logs import configure_logging
from signalflow.service import serve
from signalflow.settings import get_settings


def main() -> None:
    """Run the metrics service in the foreground until SIGTERM or SIGINT."""
    configure_logging("metrics")
    own = MetricsSettings()
    asyncio.run(serve(MetricsService(get_settings()), host=own.host, port=own.port))
