"""An asyncio loop over a confluent-kafka consumer that commits only finished batches.

`BatchStream` polls a batch in a worker thread, hands it to an async handler, waits
until everything the handler produced is acknowledged by the brokers, and only then
stores the batch's offsets for the background commit. A crash anywhere before that
point means the batch is delivered again: at-least-once, with idempotent producers
and idempotency keys downstream turning it into effectively-once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from signalflow.kafka.clients import DeliveryReports

log = logging.getLogger(__name__)

BatchHandler = Callable[[Sequence[Message]], Awaitable[None]]


class StreamClosedError(RuntimeError):
    """Raised when a stream is started twice or used after it stopped."""


class BatchStream:
    """Consumes `topics` in batches and runs `handler` on each, in order.

    Args:
        consumer: a consumer created with `enable.auto.offset.store=false`.
        topics: full topic names to subscribe to.
        handler: called with each non-empty batch of records that carry no error;
            it produces its outputs through `producer`.
        producer: flushed after each batch, before the offsets are stored.
        reports: the delivery reports of `producer`; a refused record fails the
            batch, which is then not committed.
        batch_size: the most records one handler call receives.
        poll_timeout_s: how long one poll waits for the first record.
    """

    def __init__(
        self,
        consumer: Consumer,
        topics: Sequence[str],
        handler: BatchHandler,
        *,
        producer: Producer | None,
        reports: DeliveryReports | None = None,
        batch_size: int = 500,
        poll_timeout_s: float = 0.2,
        flush_timeout_s: float = 30.0,
    ) -> None:
        self._consumer = consumer
        self._topics = list(topics)
        self._handler = handler
        self._producer = producer
        self._reports = reports
        self._batch_size = batch_size
        self._poll_timeout_s = poll_timeout_s
        self._flush_timeout_s = flush_timeout_s
        self._stopping = asyncio.Event()
        self._started = False
        self._assigned: set[tuple[str, int]] = set()
        self.records_done = 0

    @property
    def assignment(self) -> set[tuple[str, int]]:
        """The (topic, partition) pairs this stream owns right now."""
        return set(self._assigned)

    async def run(self) -> None:
        """Subscribe and process batches until `stop()` is called.

        Returns after the last batch's offsets are committed and the consumer is
        closed. Raises `StreamClosedError` when called twice, and re-raises what the
        handler raises (after closing the consumer without storing that batch).
        """
        if self._started:
            raise StreamClosedError("a BatchStream runs once; create a new one")
        self._started = True
        self._consumer.subscribe(
            self._topics, on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        try:
            while not self._stopping.is_set():
                batch = await asyncio.to_thread(self._poll)
                if batch:
                    await self._process(batch)
        finally:
            await asyncio.to_thread(self._close)

    def stop(self) -> None:
        """Ask the loop to finish its current batch, commit it and close."""
        self._stopping.set()

    async def _process(self, batch: list[Message]) -> None:
        await self._handler(batch)
        if self._producer is not None:
            await asyncio.to_thread(self._flush)
        self._consumer.store_offsets(offsets=_next_offsets(batch))
        self.records_done += len(batch)

    def _poll(self) -> list[Message]:
        messages = self._consumer.consume(self._batch_size, self._poll_timeout_s)
        return [message for message in messages if not _is_error(message)]

    def _flush(self) -> None:
        remaining = self._producer.flush(self._flush_timeout_s) if self._producer else 0
        if remaining:
            raise KafkaException(
                KafkaError(
                    KafkaError._TIMED_OUT,
                    f"{remaining} produced records unacknowledged after "
                    f"{self._flush_timeout_s}s",
                )
            )
        if self._reports is not None:
            self._reports.raise_if_refused()

    def _close(self) -> None:
        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as error:
            if error.args[0].code() != KafkaError._NO_OFFSET:
                log.warning("final commit failed: %s", error)
        self._consumer.close()
        log.info(
            "stream on %s closed after %d records", self._topics, self.records_done
        )

    def _on_assign(self, consumer: Consumer, partitions: list[Any]) -> None:
        self._assigned.update((p.topic, p.partition) for p in partitions)
        log.info("assigned %s", _describe(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[Any]) -> None:
        # Called from inside consume(), so no batch is in flight: every stored offset
        # belongs to finished work and can be committed before the partitions go.
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as error:
            if error.args[0].code() != KafkaError._NO_OFFSET:
                log.warning("commit on revoke failed: %s", error)
        self._assigned.difference_update((p.topic, p.partition) for p in partitions)
        log.info("revoked %s", _describe(partitions))


def _is_error(message: Message) -> bool:
    error = message.error()
    if error is None:
        return False
    if error.code() != KafkaError._PARTITION_EOF:
        log.warning("consumer error on %s: %s", message.topic(), error)
    return True


def position(message: Message) -> tuple[str, int, int]:
    """Return the topic, partition and offset of a consumed record.

    Raises ValueError for a message that has none, which a record returned by
    `consume()` without an error always has.
    """
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if topic is None or partition is None or offset is None:
        raise ValueError(f"expected a consumed record, got {message!r}")
    return topic, partition, offset


def _next_offsets(batch: Sequence[Message]) -> list[Any]:
    """Return, per partition, the offset after the last record of the batch."""
    last: dict[tuple[str, int], int] = {}
    for message in batch:
        topic, partition, offset = position(message)
        last[(topic, partition)] = offset
    return [TopicPartition(t, p, offset + 1) for (t, p), offset in last.items()]


def _describe(partitions: list[Any]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing"
