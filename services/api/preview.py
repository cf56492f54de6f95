"""Preview: how many prospects match a workflow's audience now, with examples.

The api sends PREVIEW on every `control` partition; each matcher partition answers
with a `matcher-status` record whose `preview.command_id` names the command. Any
api replica may be the one waiting, so each replica reads every partition of
`matcher-status` itself (no consumer group), starting at the end it had at
start-up, and hands each answer to the request waiting for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from signalflow.contracts import Codec, DecodeError
from signalflow.settings import Settings
from signalflow.topics import Topics

log = logging.getLogger(__name__)

MAX_EXAMPLES = 20


@dataclass
class PreviewWaiter:
    """The answers to one PREVIEW command, by matcher partition."""

    command_id: str
    expected: int
    answers: dict[int, dict[str, Any]] = field(default_factory=dict)
    complete: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, partition: int, answer: dict[str, Any]) -> None:
        self.answers[partition] = answer
        if len(self.answers) >= self.expected:
            self.complete.set()

    @property
    def matching(self) -> int:
        return sum(int(answer["matching"]) for answer in self.answers.values())

    def examples(self) -> list[str]:
        """Up to 20 example person keys, taken in partition order."""
        keys = [
            key
            for _, answer in sorted(self.answers.items())
            for key in answer.get("examples") or []
        ]
        return keys[:MAX_EXAMPLES]


class PreviewCollector:
    """Follows `matcher-status` and completes the waiters of PREVIEW commands.

    `expect()` before sending the command, `forget()` when done (or timed out).
    `stop()` waits for the poll in progress, at most `poll_timeout_s`.
    """

    def __init__(
        self, settings: Settings, codec: Codec, *, poll_timeout_s: float = 0.2
    ) -> None:
        self._settings = settings
        self._codec = codec
        self._topic = Topics(settings).name("matcher-status")
        self._poll_timeout_s = poll_timeout_s
        self._waiters: dict[str, PreviewWaiter] = {}
        self._consumer: Consumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        """Assign every partition of `matcher-status` at its current end."""
        self._consumer = Consumer(self._consumer_config())
        positions = await asyncio.to_thread(self._current_ends, self._consumer)
        self._consumer.assign(positions)
        self._task = asyncio.create_task(self._follow(), name="preview-collector")
        self._task.add_done_callback(_report_end)

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await asyncio.to_thread(consumer.close)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def expect(self, command_id: str, partitions: int) -> PreviewWaiter:
        """Register interest in the answers to `command_id` from `partitions`."""
        waiter = PreviewWaiter(command_id, partitions)
        self._waiters[command_id] = waiter
        return waiter

    def forget(self, command_id: str) -> None:
        self._waiters.pop(command_id, None)

    def _consumer_config(self) -> dict[str, Any]:
        # Assign-only consumer: the group id is required by the client but the
        # group never forms and nothing is committed.
        return {
            **self._settings.kafka.librdkafka_config(),
            "group.id": f"{self._settings.topic_prefix}signalflow.api-preview."
            f"{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
        }

    def _current_ends(self, consumer: Consumer) -> list[TopicPartition]:
        metadata = consumer.list_topics(self._topic, timeout=10.0)
        partitions = sorted(metadata.topics[self._topic].partitions)
        return [
            TopicPartition(
                self._topic, partition, _end_of(consumer, self._topic, partition)
            )
            for partition in partitions
        ]

    async def _follow(self) -> None:
        while not self._stopping:
            messages = await asyncio.to_thread(self._poll_batch)
            for message in messages:
                self._handle(message)

    def _poll_batch(self) -> list[Message]:
        if self._consumer is None:
            return []
        return list(self._consumer.consume(500, self._poll_timeout_s))

    def _handle(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("reading %s: %s", self._topic, error)
            return
        if not self._waiters:
            return
        try:
            status = self._codec.decode("matcher_status", message.value() or b"")
        except DecodeError as decode_error:
            log.warning("ignored an undecodable matcher status: %s", decode_error)
            return
        answer = status.get("preview")
        if answer is None:
            return
        waiter = self._waiters.get(answer["command_id"])
        if waiter is not None:
            waiter.add(int(status["partition"]), answer)


def _report_end(task: asyncio.Task[None]) -> None:
    """Log a collector that died; `/health` then reports the api degraded."""
    if not task.cancelled() and task.exception() is not None:
        log.error("collecting preview answers stopped", exc_info=task.exception())


# A topic just created may not have a leader known to this client yet.
_TRANSIENT_CODES = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
    }
)
END_OFFSET_DEADLINE_S = 30.0
END_OFFSET_RETRY_S = 0.2


def _end_of(consumer: Consumer, topic: str, partition: int) -> int:
    """The partition's end offset, retrying while its leader is not known yet."""
    deadline = time.monotonic() + END_OFFSET_DEADLINE_S
    while True:
        try:
            _, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=10.0, cached=False
            )
            return int(high)
        except KafkaException as error:
            reason = error.args[0]
            transient = reason.retriable() or reason.code() in _TRANSIENT_CODES
            if not transient or time.monotonic() > deadline:
                raise
            time.sleep(END_OFFSET_RETRY_S)
