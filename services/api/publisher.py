"""Producing from request handlers: produce, then wait for the brokers' answer.

A request that writes to Kafka answers only after every record it produced is
acknowledged (idempotent producer, `acks=all`), so a 2xx means the data is in the
log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaError, Message, Producer

from services.api.problems import Unavailable

log = logging.getLogger(__name__)

UNASSIGNED = -1
"""librdkafka's partition for "let the partitioner choose by key"."""


@dataclass(frozen=True)
class OutgoingRecord:
    """One record to produce; `partition=None` lets the key choose."""

    topic: str
    value: bytes
    key: bytes | None = None
    partition: int | None = None


class Publisher:
    """Produces records and waits until the brokers acknowledge each of them.

    Args:
        producer: an idempotent, acks=all producer (`make_producer`).
        timeout_s: how long `publish()` waits for the acknowledgements.
    """

    def __init__(self, producer: Producer, *, timeout_s: float = 30.0) -> None:
        self._producer: Producer | None = producer
        self._timeout_s = timeout_s

    async def publish(self, records: Sequence[OutgoingRecord]) -> None:
        """Produce `records` and return once every one is acknowledged.

        Raises Unavailable when the brokers refuse one or do not answer within
        `timeout_s`; records already acknowledged stay written.
        """
        if not records:
            return
        producer = self._open_producer()
        loop = asyncio.get_running_loop()
        futures = [self._produce(producer, loop, record) for record in records]
        await asyncio.to_thread(producer.flush, self._timeout_s)
        try:
            async with asyncio.timeout(self._timeout_s):
                errors = await asyncio.gather(*futures)
        except TimeoutError:
            raise Unavailable(
                f"Kafka did not acknowledge {len(records)} record(s) within"
                f" {self._timeout_s}s; nothing more was sent."
            ) from None
        refused = [error for error in errors if error is not None]
        if refused:
            raise Unavailable(
                f"Kafka refused {len(refused)} of {len(records)} record(s):"
                f" {refused[0]}"
            )

    async def close(self) -> None:
        """Wait for what is still in flight, up to `timeout_s`, then release the
        producer; `publish()` raises Unavailable afterwards."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await asyncio.to_thread(producer.flush, self._timeout_s)

    def _open_producer(self) -> Producer:
        if self._producer is None:
            raise Unavailable("The api is shutting down; send the request again.")
        return self._producer

    def _produce(
        self,
        producer: Producer,
        loop: asyncio.AbstractEventLoop,
        record: OutgoingRecord,
    ) -> asyncio.Future[str | None]:
        future: asyncio.Future[str | None] = loop.create_future()

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            loop.call_soon_threadsafe(_settle, future, error)

        try:
            producer.produce(
                record.topic,
                record.value,
                key=record.key,
                partition=UNASSIGNED if record.partition is None else record.partition,
                on_delivery=on_delivery,
            )
        except BufferError as error:
            future.set_result(f"the producer queue is full: {error}")
        return future


def _settle(future: asyncio.Future[str | None], error: KafkaError | None) -> None:
    if not future.done():
        future.set_result(None if error is None else str(error))
