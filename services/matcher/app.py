"""The matcher's faust application."""

from __future__ import annotations

import faust
from faust.web import Request, Response, View

from services.matcher.settings import MatcherSettings
from signalflow.settings import Settings
from signalflow.topics import Topics


def create_app(settings: Settings, own: MatcherSettings) -> faust.App:
    """Build the faust app: broker from settings, tables in RocksDB, health page."""
    app = faust.App(
        f"{settings.topic_prefix}signalflow.matcher",
        broker=[
            f"kafka://{server}"
            for server in settings.kafka.bootstrap_servers.split(",")
        ],
        store="rocksdb://",
        datadir=str(own.data_dir),
        web_host=own.host,
        web_port=own.port,
        topic_partitions=settings.default_partitions,
        topic_replication_factor=settings.replication_factor,
    )
    topics = Topics(settings)
    signals = app.topic(topics.name("signals"), value_serializer="raw")

    @app.agent(signals)
    async def consume_signals(stream: faust.StreamT[bytes]) -> None:
        async for _ in stream:
            pass

    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"service": "matcher", "state": "running"})

    return app
