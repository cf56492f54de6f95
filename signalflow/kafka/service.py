"""A service built around one `BatchStream`: consume, handle, produce, commit."""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Message, Producer

from signalflow.kafka.clients import (
    DeliveryReports,
    group_id,
    make_consumer,
    make_producer,
)
from signalflow.kafka.stream import BatchStream
from signalflow.service import Service
from signalflow.settings import Settings
from signalflow.topics import Topics

log = logging.getLogger(__name__)


class StreamService(Service):
    """A service whose work is one consumer group over a fixed set of topics.

    Subclasses name their group and topics and implement `handle(batch)`, producing
    through `self.producer`. `stop()` waits for the batch in hand to finish, flushes
    the producer, commits the stored offsets and closes the consumer.
    """

    #: The consumer group's name, without the environment prefix.
    group: str = "service"
    batch_size: int = 500

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings
        self.topics = Topics(settings)
        self.deliveries = DeliveryReports()
        self.producer: Producer = make_producer(settings, reports=self.deliveries)
        self._stream: BatchStream | None = None
        self._task: asyncio.Task[None] | None = None

    @abc.abstractmethod
    def input_topics(self) -> Sequence[str]:
        """Return the full names of the topics this service consumes."""

    @abc.abstractmethod
    async def handle(self, batch: Sequence[Message]) -> None:
        """Process one batch, producing every output through `self.producer`."""

    def consumer_overrides(self) -> dict[str, Any]:
        """Extra consumer settings, librdkafka names with `_` for `.`."""
        return {}

    async def _start(self) -> None:
        consumer = make_consumer(
            self.settings,
            group_id(self.settings, self.group),
            **self.consumer_overrides(),
        )
        self._stream = BatchStream(
            consumer,
            self.input_topics(),
            self.handle,
            producer=self.producer,
            reports=self.deliveries,
            batch_size=self.batch_size,
        )
        self._task = asyncio.create_task(self._run_stream(self._stream))

    async def _run_stream(self, stream: BatchStream) -> None:
        try:
            await stream.run()
        except Exception as error:  # the loop died: report it, do not hide it
            self.fail(error)

    async def _stop(self) -> None:
        if self._stream is not None:
            self._stream.stop()
        if self._task is not None:
            await self._task
        await asyncio.to_thread(self.producer.flush, 30.0)

    def health(self) -> dict[str, Any]:
        report = super().health()
        if self._stream is not None:
            report["records_done"] = self._stream.records_done
            report["partitions"] = sorted(
                f"{topic}[{partition}]" for topic, partition in self._stream.assignment
            )
        return report
