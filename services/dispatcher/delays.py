"""Putting a message on the delay tiers, or on its target when no wait is left.

Used by the dispatcher (delay steps, retry backoff) for the first hop and by the
relays for every later one, so both follow the rules of `services.dispatcher.tiers`.
Hops are collected while a batch is handled and produced by `release()` in record
timestamp order, which keeps each tier partition in leaving order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Producer

from services.dispatcher.envelope import Envelopes, Headers
from services.dispatcher.tiers import Hop, next_hop, plan_hop
from signalflow.topics import DelayTier, Topics

DeliveryCallback = Callable[[Any, Any], None]


class PartitionCounts:
    """Partition counts of topics, looked up once each through a client's metadata.

    Raises LookupError when a topic does not exist.
    """

    def __init__(self, client: Producer, *, timeout_s: float = 10.0) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._counts: dict[str, int] = {}

    def __call__(self, topic: str) -> int:
        count = self._counts.get(topic)
        if count is None:
            count = self._lookup(topic)
            self._counts[topic] = count
        return count

    def _lookup(self, topic: str) -> int:
        metadata = self._client.list_topics(topic, timeout=self._timeout_s)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise LookupError(f"expected delay topic {topic!r} to exist, got {found!r}")
        return len(found.partitions)


@dataclass(frozen=True, slots=True)
class _PendingHop:
    hop: Hop
    value: bytes
    key: bytes | None
    headers: Headers | None
    on_delivery: DeliveryCallback | None


class DelayWriter:
    """Produces waits onto the tier the rules choose, or straight to the target.

    Not thread-safe: one writer per consumer loop.
    """

    def __init__(
        self, producer: Producer, topics: Topics, envelopes: Envelopes
    ) -> None:
        self._producer = producer
        self._topics = topics
        self._envelopes = envelopes
        self._partitions = PartitionCounts(producer)
        self._pending: list[_PendingHop] = []
        self._tier_topics: dict[str, str] = {}

    def partitions(self, tier: DelayTier) -> int:
        """How many partitions the tier's topic has."""
        return self._partitions(self._topic(tier))

    def _topic(self, tier: DelayTier) -> str:
        topic = self._tier_topics.get(tier.label)
        if topic is None:
            topic = self._tier_topics[tier.label] = self._topics.delay(tier)
        return topic

    def send_later(
        self,
        *,
        due_ms: int,
        target_topic: str,
        key: bytes | None,
        payload: bytes,
        now_ms: int,
        on_delivery: DeliveryCallback | None = None,
    ) -> DelayTier | None:
        """Arrange for `payload` to reach `target_topic` at `due_ms`.

        Returns the tier it waits in (produced at the next `release()`), or None
        when it was due already and was produced to the target at once.
        """
        hop = plan_hop(due_ms, now_ms, partitions=self.partitions)
        if hop is None:
            self.produce(target_topic, payload, key=key, on_delivery=on_delivery)
            return None
        value, headers = self._envelopes.wrap(
            due_ms=due_ms,
            target_topic=target_topic,
            key=key,
            payload=payload,
            now_ms=now_ms,
        )
        self._pending.append(_PendingHop(hop, value, key, headers, on_delivery))
        return hop.tier

    def pass_on(
        self,
        due_ms: int,
        value: bytes,
        *,
        left_at_ms: int,
        now_ms: int,
        key: bytes | None,
        headers: Headers | None,
        on_delivery: DeliveryCallback | None = None,
    ) -> Hop | None:
        """Queue an envelope that left its tier at `left_at_ms` for its next tier.

        Returns the hop (produced at the next `release()`), or None when the wait
        is over on the wall clock and the caller delivers it to its target.
        """
        hop = next_hop(
            due_ms, left_at_ms=left_at_ms, now_ms=now_ms, partitions=self.partitions
        )
        if hop is not None:
            self._pending.append(_PendingHop(hop, value, key, headers, on_delivery))
        return hop

    def release(self) -> int:
        """Produce every queued hop, in record timestamp order; return how many."""
        pending, self._pending = self._pending, []
        pending.sort(key=lambda item: item.hop.timestamp_ms)
        produce = self._producer.produce
        for item in pending:
            hop = item.hop
            options: dict[str, Any] = {
                "key": item.key,
                "partition": hop.partition,
                "timestamp": hop.timestamp_ms,
                "headers": item.headers,
            }
            if item.on_delivery is not None:
                options["on_delivery"] = item.on_delivery
            try:
                produce(self._topic(hop.tier), item.value, **options)
            except BufferError:
                self.produce(self._topic(hop.tier), item.value, **options)
        return len(pending)

    def produce(self, topic: str, value: bytes, **options: Any) -> None:
        """Produce one message, waiting for room when the local queue is full.

        `options` are those of `Producer.produce`; None values are left out.
        """
        options = {name: given for name, given in options.items() if given is not None}
        while True:
            try:
                self._producer.produce(topic, value, **options)
                return
            except BufferError:
                # The local queue is full: serve delivery reports until it drains.
                self._producer.poll(0.05)
