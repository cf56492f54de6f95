"""Delay relays: one consumer per tier forwards each record when it leaves the tier.

Every record of a tier waits the same time from its record timestamp, so each
partition is ordered by leaving time (see `services.dispatcher.tiers`). The relay
reads a partition until it meets a record that has not left yet; then it pauses
the partition, seeks back to that record and keeps only its offset and leaving
time. When the time comes it resumes the partition and reads on. (A record due
within `relay_poll_ms` is waited for in place instead: resuming a partition costs
a fetch round trip, which a dense tier would pay for nearly every record.) A
record that left goes to the next tier, its envelope bytes unchanged, or, when its
due time has passed on the wall clock, to its target.

Nothing waits in memory but one offset per held partition, so a pending wait
survives any restart: the relay starts again from the committed offsets. Offsets
are stored for commit only after a flush has seen every record forwarded before
them acknowledged by the brokers (every `10 * relay_poll_ms`, and before a
rebalance or a stop); a crash before that forwards those records again, which the
idempotency key of the command makes harmless. Delivery reports come only for
failures, which stop the relay: no per-record callback on the hot path.

Each tier's relay runs its own consumer loop in its own thread; `RelayService`
runs one or several tiers as a service, inside the dispatcher process or alone
(`signalflow run relay --tier 1s`). Each tier is its own consumer group, so each
scales on its own.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from services.dispatcher.delays import DelayWriter
from services.dispatcher.envelope import Delivery, Envelopes, Headers
from services.dispatcher.settings import DispatcherSettings
from services.dispatcher.tiers import tier_ms
from signalflow.contracts import Codec, DecodeError
from signalflow.kafka.clients import group_id, make_consumer, make_producer
from signalflow.kafka.deadletters import DeadLetters
from signalflow.service import Service, ServiceState
from signalflow.settings import Settings
from signalflow.topics import DelayTier, Topics

log = logging.getLogger(__name__)

Clock = Callable[[], int]


def wall_clock_ms() -> int:
    """Milliseconds since the Unix epoch, from the wall clock."""
    return time.time_ns() // 1_000_000


class RelayError(RuntimeError):
    """A forwarded record was not acknowledged; the relay stops without committing
    it, so a restart forwards it again. Not retryable in place."""


class DelayRelay:
    """Forwards the records of one delay tier when they leave it.

    `run()` blocks until `stop()` is called (from any thread), then flushes what it
    forwarded, commits it and closes. Raises RelayError when the brokers refuse a
    forwarded record.
    """

    def __init__(
        self,
        settings: Settings,
        tier: DelayTier,
        *,
        codec: Codec,
        own: DispatcherSettings | None = None,
        clock: Clock = wall_clock_ms,
    ) -> None:
        own = own or DispatcherSettings()
        topics = Topics(settings)
        self.tier = tier
        self.topic = topics.delay(tier)
        self.name = f"relay-{tier.label}"
        self.forwarded = 0
        self.hopped = 0
        self._tier_ms = tier_ms(tier)
        self._clock = clock
        self._batch_size = own.relay_batch_size
        # consume() returns when the batch is full or this time is up, so it bounds
        # how late a record that trickles in is handled.
        self._poll_s = own.relay_poll_ms / 1000
        self._wait_in_place_ms = own.relay_poll_ms
        self._consumer = make_consumer(
            settings,
            group_id(settings, f"relay.{tier.label}"),
            **_consumer_overrides(own, tier),
        )
        self._producer = make_producer(settings, delivery_report_only_error=True)
        self._envelopes = Envelopes(codec)
        self._writer = DelayWriter(self._producer, topics, self._envelopes)
        self._dead_letters = DeadLetters(
            self._producer, topics, codec, service=self.name
        )
        self._held: dict[int, int] = {}  # partition -> when its head leaves (ms)
        self._unsettled: dict[int, int] = {}  # partition -> offset after forwarded
        self._refused: KafkaError | None = None
        self._settle_every_ms = 10 * own.relay_poll_ms
        self._settled_at = clock()
        self._stopping = threading.Event()

    @property
    def held(self) -> dict[int, int]:
        """Paused partitions and when their head record leaves the tier (epoch ms)."""
        return dict(self._held)

    def stop(self) -> None:
        """Ask `run()` to finish its batch, commit and return."""
        self._stopping.set()

    def run(self) -> None:
        """Consume and forward until `stop()`; commits and closes on the way out."""
        self._consumer.subscribe(
            [self.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        log.info("%s relaying %s", self.name, self.topic)
        try:
            while not self._stopping.is_set():
                now_ms = self._clock()
                self._resume_due(now_ms)
                batch = self._consumer.consume(self._batch_size, self._timeout(now_ms))
                if batch:
                    self._handle(batch)
                self._producer.poll(0)
                if (
                    self._unsettled
                    and now_ms - self._settled_at >= self._settle_every_ms
                ):
                    self._settle()
        finally:
            self._close()

    # one batch

    def _handle(self, messages: Sequence[Message]) -> None:
        now_ms = self._clock()
        # Waiting in place is bounded per batch, not per record: the records of
        # other partitions later in the batch must not wait behind a long series.
        wait_until = now_ms + self._wait_in_place_ms
        unsettled = self._unsettled
        for message in messages:
            if message.error() is not None:
                _log_consumer_error(message)
                continue
            partition, offset = message.partition(), message.offset()
            if partition is None or offset is None or partition in self._held:
                continue  # read ahead before the pause; read again after it
            leaves_at = message.timestamp()[1] + self._tier_ms
            if now_ms < leaves_at <= wait_until:
                # Due in a moment: waiting here is quicker than pausing, which
                # costs a fetch round trip once the partition is resumed.
                time.sleep((leaves_at - now_ms) / 1000)
                now_ms = self._clock()
            if leaves_at > now_ms:
                self._hold(partition, offset, leaves_at)
                continue
            self._forward(message, leaves_at, now_ms)
            unsettled[partition] = offset + 1
        self._writer.release()

    def _forward(self, message: Message, leaves_at: int, now_ms: int) -> None:
        value = message.value() or b""
        delivery = self._envelopes.delivery_if_due(value, now_ms)
        if delivery is not None:
            self._deliver(delivery)
            return
        try:
            routing = self._envelopes.routing(value, message.headers)
            hop = None
            if now_ms < routing.due_ms:
                hop = self._writer.pass_on(
                    routing.due_ms,
                    value,
                    left_at_ms=leaves_at,
                    now_ms=now_ms,
                    key=message.key(),
                    headers=cast(Headers | None, message.headers()),
                    on_delivery=self._report,
                )
            delivery = None if hop else self._envelopes.open(value, routing)
        except (DecodeError, ValueError) as error:
            self._dead_letter(message, f"not a delay envelope: {error}")
            return
        if delivery is None:
            self.hopped += 1
            return
        self._deliver(delivery)

    def _deliver(self, delivery: Delivery) -> None:
        try:  # the hot path of a draining backlog: no option filtering here
            self._producer.produce(
                delivery.topic,
                delivery.value,
                delivery.key,
                on_delivery=self._report,
                headers=cast(Any, delivery.headers),
            )
        except BufferError:
            self._writer.produce(
                delivery.topic,
                delivery.value,
                key=delivery.key,
                headers=delivery.headers,
                on_delivery=self._report,
            )
        self.forwarded += 1

    def _report(self, error: KafkaError | None, message: Message) -> None:
        """Delivery report; with `delivery.report.only.error` only failures come."""
        if error is not None and self._refused is None:
            self._refused = error

    def _dead_letter(self, message: Message, reason: str) -> None:
        self._dead_letters.send(message, reason)
        # Rare: wait for it here, so the offset stored after it is safe.
        self._producer.flush(30.0)

    # pausing and resuming partitions

    def _hold(self, partition: int, offset: int, leaves_at: int) -> None:
        position = TopicPartition(self.topic, partition, offset)
        self._consumer.pause([position])
        self._consumer.seek(position)
        self._held[partition] = leaves_at
        log.debug("%s holds [%d]@%d until %d", self.name, partition, offset, leaves_at)

    def _resume_due(self, now_ms: int) -> None:
        due = [p for p, leaves_at in self._held.items() if leaves_at <= now_ms]
        if not due:
            return
        positions = [TopicPartition(self.topic, p) for p in due]
        self._consumer.resume(positions)
        for partition in due:
            del self._held[partition]
        self._wake_fetcher(positions)

    def _wake_fetcher(self, positions: list[TopicPartition]) -> None:
        """Make librdkafka fetch the resumed partitions now.

        With every partition of a broker paused, librdkafka's broker thread has no
        fetch in flight and looks at a resumed partition only when its idle wait
        (up to a second) ends; a request to that broker (a watermark query, one
        round trip) wakes it at once.
        """
        for position in positions:
            try:
                self._consumer.get_watermark_offsets(
                    position, timeout=self._poll_s * 10, cached=False
                )
            except KafkaException as error:
                log.debug("%s could not wake the fetcher: %s", self.name, error)

    def _timeout(self, now_ms: int) -> float:
        if not self._held:
            return self._poll_s
        earliest = min(self._held.values())
        return max(0.0, min(self._poll_s, (earliest - now_ms) / 1000))

    # committing

    def _settle(self) -> None:
        """Wait until every forwarded record is acknowledged, then store the
        offsets after them. Raises RelayError when the brokers refused one."""
        remaining = self._producer.flush(30.0)
        if remaining:
            raise RelayError(
                f"{self.name}: {remaining} forwarded records unacknowledged after 30s"
            )
        if self._refused is not None:
            raise RelayError(
                f"{self.name}: brokers refused a forwarded record: {self._refused}"
            )
        offsets = [
            TopicPartition(self.topic, partition, offset)
            for partition, offset in self._unsettled.items()
        ]
        self._unsettled.clear()
        self._settled_at = self._clock()
        if not offsets:
            return
        try:
            self._consumer.store_offsets(offsets=offsets)
        except KafkaException as error:  # the partition went in a rebalance
            log.warning("%s could not store %s: %s", self.name, offsets, error)

    def _commit(self) -> None:
        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as error:
            if error.args[0].code() != KafkaError._NO_OFFSET:
                log.warning("%s commit failed: %s", self.name, error)

    def _close(self) -> None:
        try:
            self._settle()
            self._commit()
        finally:
            self._consumer.close()
            log.info(
                "%s closed after forwarding %d and passing on %d",
                self.name,
                self.forwarded,
                self.hopped,
            )

    # rebalances

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("%s assigned %s", self.name, _describe(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Inside consume(): no batch is being handled, only acks may be pending.
        self._settle()
        self._commit()
        self._forget(partitions)
        log.info("%s revoked %s", self.name, _describe(partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._forget(partitions)
        log.warning(
            "%s lost %s; their records are read again", self.name, _describe(partitions)
        )

    def _forget(self, partitions: list[TopicPartition]) -> None:
        for position in partitions:
            self._held.pop(position.partition, None)
            self._unsettled.pop(position.partition, None)


def _consumer_overrides(own: DispatcherSettings, tier: DelayTier) -> dict[str, Any]:
    overrides: dict[str, Any] = {
        "fetch_wait_max_ms": own.relay_fetch_wait_ms,
        "queued_max_messages_kbytes": own.relay_prefetch_kbytes,
        "queued_min_messages": 10 * own.relay_batch_size,
        # librdkafka postpones a partition's next fetch by this much when its local
        # queue is full; the default (1s) would make a resumed head that late.
        "fetch_queue_backoff_ms": own.relay_fetch_wait_ms,
        "fetch_error_backoff_ms": own.relay_fetch_wait_ms,
    }
    if own.instance_id:
        overrides["group_instance_id"] = f"{own.instance_id}.relay.{tier.label}"
    return overrides


def _log_consumer_error(message: Message) -> None:
    error = message.error()
    if error is not None and error.code() != KafkaError._PARTITION_EOF:
        log.warning("consumer error on %s: %s", message.topic(), error)


def _describe(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing"


class RelayService(Service):
    """Runs the relays of several tiers, each in its own thread.

    `stop()` waits until every relay has flushed, committed and closed. A relay
    that fails marks the service failed (its health turns 503) and the process
    exits, to be restarted from the committed offsets.
    """

    name = "relay"

    def __init__(
        self,
        settings: Settings,
        tiers: Sequence[DelayTier],
        *,
        codec: Codec | None = None,
        own: DispatcherSettings | None = None,
    ) -> None:
        super().__init__()
        if not tiers:
            raise ValueError("expected at least one delay tier to relay, got none")
        self._settings = settings
        self._tiers = list(tiers)
        self._codec = codec or Codec.load()
        self._own = own or DispatcherSettings()
        self.relays: list[DelayRelay] = []
        self._threads: list[asyncio.Future[None]] = []

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        for tier in self._tiers:
            relay = DelayRelay(self._settings, tier, codec=self._codec, own=self._own)
            self.relays.append(relay)
            self._threads.append(_run_in_thread(loop, relay.run, relay.name))
        for future in self._threads:
            future.add_done_callback(self._check)

    async def _stop(self) -> None:
        for relay in self.relays:
            relay.stop()
        results = await asyncio.gather(*self._threads, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            log.error("relays stopped with errors: %s", failures)

    def _check(self, future: asyncio.Future[None]) -> None:
        if future.cancelled() or future.exception() is None:
            return
        error = future.exception()
        if error is not None and self.state is ServiceState.RUNNING:
            self.fail(error)

    def health(self) -> dict[str, Any]:
        report = super().health()
        report["tiers"] = {
            relay.tier.label: {
                "forwarded": relay.forwarded,
                "passed_on": relay.hopped,
                "held_partitions": len(relay.held),
            }
            for relay in self.relays
        }
        return report


def _run_in_thread(
    loop: asyncio.AbstractEventLoop, target: Callable[[], None], name: str
) -> asyncio.Future[None]:
    """Run `target` in a thread of its own; the future ends when it returns."""
    future: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if future.done():
            return
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)

    def body() -> None:
        try:
            target()
        except BaseException as error:  # handed to the event loop, not lost
            loop.call_soon_threadsafe(settle, error)
        else:
            loop.call_soon_threadsafe(settle, None)

    threading.Thread(target=body, name=name, daemon=True).start()
    return future
