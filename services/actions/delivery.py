"""A producer whose sends can be awaited until the brokers acknowledge them.

The action runner marks a command finished only once its step result is durable,
one command at a time, while others keep running; flushing the whole producer per
command would serialise them. `AckedProducer` attaches a delivery callback to each
record and resolves an asyncio future from it. A background thread serves the
callbacks (`Producer.poll`), so the event loop never blocks on librdkafka.

Acknowledgements are handed to the event loop in batches: the callbacks one
`poll` (or `flush`) serves are collected, and the loop is woken once for all of
them rather than once per record.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException, Message, Producer

log = logging.getLogger(__name__)

Headers = list[tuple[str, str | bytes | None]]
DeliveryCallback = Callable[[KafkaError | None, Message], None]
Ack = tuple["asyncio.Future[None]", KafkaError | None]


class AckedProducer:
    """Wraps a confluent-kafka `Producer` with awaitable, acknowledged sends.

    Args:
        producer: an idempotent, acks=all producer (`make_producer`).
        poll_interval_s: how long one background poll waits for callbacks.
    """

    def __init__(self, producer: Producer, *, poll_interval_s: float = 0.05) -> None:
        self.producer = producer
        self._poll_interval_s = poll_interval_s
        self._running = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._acks: list[Ack] = []
        self._acks_lock = threading.Lock()

    def start(self) -> None:
        """Start serving delivery callbacks; call from the event loop that awaits."""
        if self._thread is not None:
            raise RuntimeError("AckedProducer.start() was already called")
        self._loop = asyncio.get_running_loop()
        self._running.set()
        self._thread = threading.Thread(
            target=self._serve_callbacks, name="acked-producer", daemon=True
        )
        self._thread.start()

    async def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | str | None,
        headers: Headers | None = None,
    ) -> None:
        """Produce one record and wait until the brokers acknowledged it.

        Waits while the local queue is full. Raises KafkaException when the record
        cannot be delivered (after librdkafka's own retries).
        """
        if self._loop is None:
            raise RuntimeError("AckedProducer.send() before start()")
        acked: asyncio.Future[None] = self._loop.create_future()
        callback = self._callback_for(acked)
        while True:
            try:
                self.producer.produce(
                    topic, value, key=key, headers=headers, on_delivery=callback
                )
                break
            except BufferError:
                # The local queue is full: give the poll thread time to drain it.
                await asyncio.sleep(self._poll_interval_s)
        await acked

    async def close(self, *, timeout_s: float = 30.0) -> None:
        """Wait for every outstanding record (at most `timeout_s`), then stop polling.

        Logs a warning naming how many records were left unacknowledged.
        """
        remaining = await asyncio.to_thread(self._flush, timeout_s)
        if remaining:
            log.warning("%d produced records unacknowledged at close", remaining)
        self._running.clear()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    def flush(self, timeout_s: float) -> int:
        """Wait (blocking) for every outstanding record; return how many are left.

        For callers in a worker thread, such as a dead letter that must be durable
        before its source offset is committed.
        """
        return self._flush(timeout_s)

    def _callback_for(self, acked: asyncio.Future[None]) -> DeliveryCallback:
        def delivered(error: KafkaError | None, message: Message) -> None:
            with self._acks_lock:
                self._acks.append((acked, error))

        return delivered

    def _serve_callbacks(self) -> None:
        while self._running.is_set():
            self.producer.poll(self._poll_interval_s)
            self._hand_over_acks()

    def _flush(self, timeout_s: float) -> int:
        remaining = int(self.producer.flush(timeout_s))
        self._hand_over_acks()
        return remaining

    def _hand_over_acks(self) -> None:
        with self._acks_lock:
            acks, self._acks = self._acks, []
        if acks and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(_settle_all, acks)


def _settle_all(acks: list[Ack]) -> None:
    for acked, error in acks:
        if acked.done():
            continue
        if error is None:
            acked.set_result(None)
        else:
            acked.set_exception(KafkaException(error))
