"""What the worker sends, and how a partition catches up with what it sent.

`FaustOutbox` sends status reports, handovers of people who moved to another
partition's account, and enrollments. Enrollments go to the same partition
number of the `enrollments` topic as the matcher partition that decided them, so
a partition's enrollments are all in one place, written by one owner at a time.
`reconcile()` reads that place from the last offset the partition recorded to
the end, and records every enrollment found there that its tables lack (see the
argument in `services.matcher.app`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Sequence
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.matcher.store import EMITTED_UP_TO, PartitionState
from signalflow.contracts import Codec, DecodeError
from signalflow.settings import Settings

log = logging.getLogger(__name__)

Json = dict[str, Any]


class FaustSent:
    """Enrollments queued in faust's producer; `offsets()` waits for the broker."""

    def __init__(self, outbox: FaustOutbox, futures: list[Awaitable[Any]]) -> None:
        self._outbox = outbox
        self._futures = futures

    async def offsets(self) -> list[int]:
        """The offsets once the broker acknowledged every enrollment; raises what
        the producer raises for one it could not deliver."""
        offsets = [int((await future).offset) for future in self._futures]
        self._outbox.acknowledged += len(offsets)
        return offsets


class FaustOutbox:
    """Sends enrollments, handovers and status reports through the worker's producer.

    `acknowledged` counts the enrollments the broker acknowledged.
    """

    def __init__(
        self,
        codec: Codec,
        *,
        enrollments: faust.TopicT,
        status: faust.TopicT,
        handovers: faust.TopicT,
    ) -> None:
        self._codec = codec
        self._enrollments = enrollments
        self._status = status
        self._handovers = handovers
        self.acknowledged = 0

    async def send_enrollments(
        self, partition: int, records: Sequence[Json]
    ) -> FaustSent:
        """Queue the enrollments for `partition`, in order; returns before the
        broker acknowledges them."""
        futures = []
        for record in records:
            futures.append(
                await self._enrollments.send(
                    key=record["account_key"].encode(),
                    value=self._codec.encode("enrollment", record),
                    partition=partition,
                )
            )
        return FaustSent(self, futures)

    async def send_status(self, record: Json) -> None:
        key = f"{record['workflow_id']}|{record['partition']}"
        await self._status.send(
            key=key.encode(), value=self._codec.encode("matcher_status", record)
        )

    async def send_handover(self, record: Json) -> Awaitable[Any]:
        """Queue a moved person's handover, keyed by their new account; returns
        the future of its acknowledgement."""
        delivery: Awaitable[Any] = await self._handovers.send(
            key=record["profile"]["account_key"].encode(),
            value=self._codec.encode("person_handover", record),
        )
        return delivery


class DeadLetterSender:
    """Sends what the matcher cannot process to `dead-letters`, with the reason."""

    def __init__(self, codec: Codec, topic: faust.TopicT) -> None:
        self._codec = codec
        self._topic = topic
        self.sent = 0

    async def send(self, message: Any, error: str) -> None:
        """Dead-letter one consumed message (a faust `Message`)."""
        record = {
            "source_topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
            "key": message.key,
            "value": message.value or b"",
            "error": error,
            "service": "matcher",
            "failed_at": int(time.time() * 1000),
            "history": [],
        }
        headers = [
            ("source_topic", message.topic.encode()),
            ("error", error.encode()[:1000]),
            ("service", b"matcher"),
        ]
        await self._topic.send(
            key=message.key,
            value=self._codec.encode("dead_letter", record),
            headers=headers,
        )
        self.sent += 1
        log.error(
            "dead-lettered %s[%d]@%d: %s",
            message.topic,
            message.partition,
            message.offset,
            error,
        )


async def reconcile(
    settings: Settings,
    codec: Codec,
    topic: str,
    partition: int,
    state: PartitionState,
) -> list[Json]:
    """Record the run ids of the enrollments of `partition` sent after its last
    recorded offset.

    Returns the live enrollments that were missing from the tables, in order,
    for `PartitionMatcher.recover()` to apply. Raises what aiokafka raises when
    the topic cannot be read; the record is then processed again.
    """
    recorded = state.emitted.get(EMITTED_UP_TO)
    start = 0 if recorded is None else int(recorded) + 1
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(
        **settings.kafka.aiokafka_config(),
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    missing: list[Json] = []
    try:
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        if start >= end:
            return []
        consumer.seek(tp, start)
        while (await consumer.position(tp)) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=1000)
            for message in batch.get(tp, []):
                found = _record_sent(codec, state, message.value, message.offset)
                if found is not None:
                    missing.append(found)
    finally:
        await consumer.stop()
    if missing:
        log.warning(
            "partition %d: recorded %d enrollments sent before a crash",
            partition,
            len(missing),
        )
    return missing


def _record_sent(
    codec: Codec, state: PartitionState, value: bytes | None, offset: int
) -> Json | None:
    """Record the run id of one enrollment found in the topic; returns the
    enrollment when it was missing from the tables and live."""
    try:
        record: Json = codec.decode("enrollment", value or b"")
    except DecodeError as error:
        log.warning("skipped an undecodable enrollment at %d: %s", offset, error)
        return None
    run_id = record["run_id"]
    missing = state.emitted.get(run_id) is None
    if missing:
        state.emitted.put(run_id, offset)
    current = state.emitted.get(EMITTED_UP_TO)
    if current is None or offset > int(current):
        state.emitted.put(EMITTED_UP_TO, offset)
    if missing and record["mode"] == "LIVE":
        return record
    return None
