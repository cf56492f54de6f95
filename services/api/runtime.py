"""What the api's routes share: the definition log, Kafka clients, Redis.

`ApiRuntime` starts them in dependency order with the application and stops them in
reverse; routes reach it through `runtime(request)`.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import Request
from redis.asyncio import Redis

from services.api.control import ControlChannel
from services.api.ingest import Ingestor
from services.api.payloads import Health
from services.api.preview import PreviewCollector
from services.api.publisher import Publisher
from services.api.settings import ApiSettings
from services.api.testruns import RunResultRecorder, RunResultStore
from services.metrics.store import MetricsStore
from signalflow.contracts import Codec
from signalflow.definitions import DefinitionLog
from signalflow.kafka.clients import make_producer
from signalflow.settings import Settings

log = logging.getLogger(__name__)


class ApiRuntime:
    """The long-lived parts of one api process.

    `start()` reads every definition before it returns, so the first request sees
    them all; `stop()` waits for the consumers' current polls and batches and for
    every produced record to be acknowledged.
    """

    def __init__(self, settings: Settings, api_settings: ApiSettings) -> None:
        self.settings = settings
        self.api_settings = api_settings
        self.codec = Codec.load()
        self.redis = Redis.from_url(settings.redis.url)
        self.definitions = DefinitionLog(settings, codec=self.codec)
        self.publisher = Publisher(make_producer(settings, linger_ms=1))
        self.control = ControlChannel(settings, self.publisher, self.codec)
        self.previews = PreviewCollector(settings, self.codec)
        self.results = RunResultStore(
            self.redis,
            topic_prefix=settings.topic_prefix,
            ttl_s=api_settings.test_run_ttl_s,
        )
        self.recorder = RunResultRecorder(settings, self.codec, self.results)
        self.ingestor = Ingestor(settings, self.publisher, self.codec)
        self.metrics = MetricsStore(self.redis, topic_prefix=settings.topic_prefix)
        self._state: Health = Health(state="starting", components={})

    async def start(self) -> None:
        """Start every part; raises what the first failing part raises."""
        await self.definitions.start()
        await asyncio.to_thread(self.control.start)
        await self.previews.start()
        self.recorder.start()
        self._state = Health(state="running", components={})
        log.info(
            "api runtime started: %d control partitions",
            self.control.partition_count,
        )

    async def stop(self) -> None:
        """Stop every part, in reverse order of start."""
        self._state = Health(state="stopped", components={})
        await self.recorder.stop()
        await self.previews.stop()
        await self.publisher.close()
        await self.definitions.stop()
        await self.redis.aclose()

    def health(self) -> Health:
        """Report whether each background part is running."""
        if self._state.state != "running":
            return self._state
        components = {
            "definitions": self.definitions.following,
            "previews": self.previews.running,
            "run_results": self.recorder.running,
        }
        if all(components.values()):
            return Health(state="running", components=components)
        return Health(state="degraded", components=components)


def runtime(request: Request) -> ApiRuntime:
    """The runtime of the application serving `request`."""
    current: ApiRuntime = request.app.state.runtime
    return current
