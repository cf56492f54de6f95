"""`DefinitionLog`: every audience and workflow version, read from Kafka.

The compacted, single-partition `workflows` topic is the only store of definitions.
Each process that needs them (the api, the matcher, the dispatcher) keeps its own
`DefinitionLog`: `start()` reads the topic from the beginning to the end it had when
`start()` was called, then a background task follows it, so every replica converges
on the same view in write order.

Writes go through `save()` and `delete()`. Both hold a short Redis lock per
definition id (`signalflow:<topic prefix>definitions:lock:<id>`) while they read
the log to its current end, assign the next version and produce, so two api
replicas never assign the same version. They return only
once the log's own view holds the new version (read your writes).

Consumption uses `assign()` on partition 0 without a consumer group: every reader
wants the whole topic, and nothing is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import redis.asyncio as redis
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from redis.exceptions import LockError

from signalflow.contracts import Codec, DecodeError
from signalflow.definitions.errors import (
    DefinitionKindError,
    DefinitionLogError,
    LogNotRunningError,
    SaveTimeoutError,
    UnknownDefinitionError,
    VersionConflictError,
)
from signalflow.definitions.records import (
    Definition,
    StoredDefinition,
    definition_key,
    from_record,
    kind_of,
    to_record,
)
from signalflow.kafka.clients import make_producer
from signalflow.settings import Settings
from signalflow.topics import Topics
from signalflow.workflow import Audience, Workflow

log = logging.getLogger(__name__)

ChangeCallback = Callable[[StoredDefinition], None]
"""Called with each version the log applies, in the event loop's thread."""

SCHEMA = "definition"
PARTITION = 0
ACTIVE = "active"
END_OFFSET_RETRY_S = 0.2
FETCH_WAIT_MS = 50


class DefinitionLog:
    """The view of every definition version in the `workflows` topic.

    Args:
        settings: where Kafka and Redis are, and the topic prefix.
        codec: the Avro codec; loaded from `schemas/` when omitted.
        save_timeout_s: how long `save()` and `delete()` wait for the lock, the
            broker's acknowledgement and the read-back, each.
        poll_timeout_s: how long one background poll waits for a new record; it
            bounds how long `stop()` waits.

    Reads (`workflow()`, `audience()`, `history()`, ...) are plain lookups in
    memory and never wait; they reflect every record the background task has
    applied. Use the log from the event loop that started it.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        codec: Codec | None = None,
        save_timeout_s: float = 30.0,
        poll_timeout_s: float = 0.2,
    ) -> None:
        self._settings = settings
        self._codec = codec or Codec.load()
        self._topic = Topics(settings).name("workflows")
        self._save_timeout_s = save_timeout_s
        self._poll_timeout_s = poll_timeout_s
        self._versions: dict[str, dict[int, StoredDefinition]] = {}
        self._latest: dict[str, StoredDefinition] = {}
        self._callbacks: list[ChangeCallback] = []
        self._position = 0
        self._advanced = asyncio.Condition()
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._redis: redis.Redis | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._stopping = False

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Read the topic to the end it has now, then follow it in the background.

        Returns once every record written before the call is in the view. Raises
        LogNotRunningError when called twice, and KafkaException when the topic
        cannot be read.
        """
        if self._started:
            raise LogNotRunningError("a DefinitionLog starts once; create a new one")
        self._started = True
        self._consumer = Consumer(self._consumer_config())
        end = await asyncio.to_thread(self._end_offset)
        self._consumer.assign(
            [TopicPartition(self._topic, PARTITION, OFFSET_BEGINNING)]
        )
        self._producer = make_producer(self._settings, linger_ms=0)
        self._task = asyncio.create_task(self._follow(), name="definition-log")
        await self._wait_position(end)
        log.info(
            "definition log read %s to offset %d: %d definitions",
            self._topic,
            end,
            len(self._latest),
        )

    async def stop(self) -> None:
        """Stop following the topic and close the clients.

        Waits for the poll in progress (at most `poll_timeout_s`) and for every
        produced record to be acknowledged. Idempotent.
        """
        if self._stopping or not self._started:
            self._stopping = True
            return
        self._stopping = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        consumer, producer, client = self._consumer, self._producer, self._redis
        # Released, not only closed: librdkafka keeps reconnecting until the
        # client object itself is gone.
        self._consumer, self._producer, self._redis = None, None, None
        if consumer is not None:
            await asyncio.to_thread(consumer.close)
        if producer is not None:
            await asyncio.to_thread(producer.flush, self._save_timeout_s)
        if client is not None:
            await client.aclose()
        log.info("definition log stopped at offset %d", self._position)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -------------------------------------------------------------------- reads

    @property
    def following(self) -> bool:
        """Whether the background task is following the topic right now."""
        running = self._task is not None and not self._task.done()
        return running and not self._stopping

    @property
    def position(self) -> int:
        """The offset after the last record applied to the view."""
        return self._position

    def entry(
        self, definition_id: str, version: int | None = None
    ) -> StoredDefinition | None:
        """Return one stored version (the latest when `version` is None), or None.

        Unlike `workflow()` and `audience()` this returns deletions too.
        """
        if version is None:
            return self._latest.get(definition_id)
        return self._versions.get(definition_id, {}).get(version)

    def workflow(self, workflow_id: str, version: int | None = None) -> Workflow | None:
        """Return a workflow version, or the latest when `version` is None.

        None when the id is unknown, is an audience, or the version asked for (or
        the latest) is a deletion. An older version stays readable after later
        versions and after a deletion, so a run can finish on the version it
        started with.
        """
        model = self._live_model(definition_id=workflow_id, version=version)
        return model if isinstance(model, Workflow) else None

    def audience(self, audience_id: str, version: int | None = None) -> Audience | None:
        """Return an audience version, or the latest when `version` is None.

        None in the same cases as `workflow()`.
        """
        model = self._live_model(definition_id=audience_id, version=version)
        return model if isinstance(model, Audience) else None

    def history(self, definition_id: str) -> list[StoredDefinition]:
        """Return every version of a definition, oldest first, deletions included."""
        versions = self._versions.get(definition_id, {})
        return [versions[number] for number in sorted(versions)]

    def workflows(self) -> dict[str, Workflow]:
        """Return the latest version of every workflow not deleted, by id."""
        return {
            entry.id: entry.model
            for entry in self._latest.values()
            if not entry.deleted and isinstance(entry.model, Workflow)
        }

    def audiences(self) -> dict[str, Audience]:
        """Return the latest version of every audience not deleted, by id."""
        return {
            entry.id: entry.model
            for entry in self._latest.values()
            if not entry.deleted and isinstance(entry.model, Audience)
        }

    def active_workflows(self) -> list[Workflow]:
        """Return the workflows whose latest version is active, ordered by id."""
        return [
            workflow
            for _, workflow in sorted(self.workflows().items())
            if workflow.status == ACTIVE
        ]

    def on_change(self, callback: ChangeCallback) -> Callable[[], None]:
        """Call `callback` with every version applied from now on; returns an
        unsubscribe function.

        Registered before `start()`, it also sees every version read while
        starting. It runs in the event loop's thread and must not block; an
        exception it raises is logged and does not stop the log.
        """
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    async def sync(self) -> None:
        """Wait until the view holds every record written before this call.

        Use it where another replica may just have written (before computing a
        version, or to answer a read that must not be stale). Raises
        SaveTimeoutError if the log does not get there within `save_timeout_s`.
        """
        self._check_running()
        end = await asyncio.to_thread(self._end_offset)
        await self._wait_position(end, timeout_s=self._save_timeout_s)

    # ------------------------------------------------------------------- writes

    async def save(self, definition: Definition, *, expect: int | None = None) -> int:
        """Save `definition` as the next version of its id and return that version.

        The first save of an id is version 1. With `expect`, the save happens
        only if the latest version is still `expect` (0: the id is new), which
        makes a read-modify-write safe against another writer. Returns once the
        log's own view holds the new version. Raises VersionConflictError when
        `expect` is stale, DefinitionKindError when the id belongs to a
        definition of the other kind, SaveTimeoutError when the lock, the broker
        or the read-back takes longer than `save_timeout_s`.
        """
        self._check_running()
        kind = kind_of(definition)
        async with self._definition_lock(definition.id):
            await self.sync()
            latest = self._latest.get(definition.id)
            _check_expected(definition.id, latest, expect)
            if latest is not None and latest.kind is not kind:
                raise DefinitionKindError(
                    f"expected id {definition.id!r} to name a {kind.value.lower()},"
                    f" but it names a {latest.kind.value.lower()}"
                )
            version = 1 if latest is None else latest.version + 1
            await self._write(definition, version=version, deleted=False)
        return version

    async def delete(self, definition_id: str, *, expect: int | None = None) -> int:
        """Delete a definition: save a new version marked deleted; return it.

        Earlier versions stay in the history and stay readable by version.
        `expect` works as in `save()`. Raises UnknownDefinitionError when the id
        has no live definition, VersionConflictError and SaveTimeoutError as
        `save()` does.
        """
        self._check_running()
        async with self._definition_lock(definition_id):
            await self.sync()
            latest = self._latest.get(definition_id)
            _check_expected(definition_id, latest, expect)
            if latest is None or latest.deleted or latest.model is None:
                raise UnknownDefinitionError(definition_id)
            version = latest.version + 1
            await self._write(latest.model, version=version, deleted=True)
        return version

    # ---------------------------------------------------------------- internals

    def _consumer_config(self) -> dict[str, Any]:
        # A group id is mandatory for a confluent-kafka consumer even when it only
        # assigns partitions; a unique one that never joins or commits is harmless.
        return {
            **self._settings.kafka.librdkafka_config(),
            "group.id": f"{self._settings.topic_prefix}signalflow.definitions."
            f"{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            # A fetch that finds nothing new waits this long on the broker; short,
            # so a save's read-back does not wait behind an idle long poll.
            "fetch.wait.max.ms": FETCH_WAIT_MS,
        }

    def _end_offset(self) -> int:
        """Ask the leader for the partition's end; retries transient errors such
        as a leader not elected yet for a topic just created."""
        deadline = time.monotonic() + self._save_timeout_s
        partition = TopicPartition(self._topic, PARTITION)
        while True:
            try:
                _, high = self._running_consumer().get_watermark_offsets(
                    partition, timeout=10.0, cached=False
                )
                return int(high)
            except KafkaException as error:
                if not _transient(error) or time.monotonic() > deadline:
                    raise
                log.debug("end of %s not known yet: %s", self._topic, error)
                time.sleep(END_OFFSET_RETRY_S)

    def _check_running(self) -> None:
        if not self._started or self._stopping:
            raise LogNotRunningError("the definition log is not running; start() it")
        if self._task is not None and self._task.done():
            raise LogNotRunningError(
                f"the definition log stopped following {self._topic!r} after an error"
            )

    def _running_consumer(self) -> Consumer:
        if self._consumer is None:
            raise LogNotRunningError("the definition log is not running; start() it")
        return self._consumer

    async def _follow(self) -> None:
        try:
            while not self._stopping:
                messages = await asyncio.to_thread(self._poll_batch)
                for message in messages:
                    self._apply(message)
                if messages:
                    await self._announce()
        except Exception:
            log.exception("definition log stopped following %s", self._topic)
            raise
        finally:
            # Wake every waiter, so a failure is reported instead of awaited.
            await self._announce()

    async def _announce(self) -> None:
        async with self._advanced:
            self._advanced.notify_all()

    def _poll_batch(self) -> list[Message]:
        consumer = self._running_consumer()
        first = consumer.poll(self._poll_timeout_s)
        if first is None:
            return []
        return [first, *consumer.consume(500, 0)]

    def _apply(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            self._note_error(message, error)
            return
        offset = _offset_of(message)
        self._position = max(self._position, offset + 1)
        try:
            record = self._codec.decode(SCHEMA, message.value() or b"")
        except DecodeError as decode_error:
            log.error(
                "skipped undecodable definition at %s@%d: %s",
                self._topic,
                offset,
                decode_error,
            )
            return
        self._store(from_record(record, offset=offset))

    def _note_error(self, message: Message, error: KafkaError) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            self._position = max(self._position, _offset_of(message))
        elif error.fatal():
            raise KafkaException(error)
        else:
            log.warning("reading %s: %s; the client retries", self._topic, error)

    def _store(self, entry: StoredDefinition) -> None:
        versions = self._versions.setdefault(entry.id, {})
        if entry.version in versions:
            # Compaction keeps the last record of a key, so the view does too.
            log.warning("definition %s@%d written twice", entry.id, entry.version)
        versions[entry.version] = entry
        latest = self._latest.get(entry.id)
        if latest is None or entry.version >= latest.version:
            self._latest[entry.id] = entry
        log.debug("applied definition %s@%d", entry.id, entry.version)
        for callback in list(self._callbacks):
            try:
                callback(entry)
            except Exception:
                log.exception("definition change callback %r failed", callback)

    async def _wait_position(
        self, offset: int, *, timeout_s: float | None = None
    ) -> None:
        """Wait until the view has applied every record before `offset`."""

        async def reached() -> None:
            async with self._advanced:
                await self._advanced.wait_for(self._reached_or_failed(offset))

        try:
            await asyncio.wait_for(reached(), timeout_s)
        except TimeoutError:
            raise SaveTimeoutError(
                f"expected the definition log to reach offset {offset} within"
                f" {timeout_s}s, it is at {self._position}"
            ) from None
        if self._position < offset and self._task is not None and self._task.done():
            self._raise_follow_failure()

    def _reached_or_failed(self, offset: int) -> Callable[[], bool]:
        def check() -> bool:
            failed = self._task is not None and self._task.done()
            return self._position >= offset or failed

        return check

    def _raise_follow_failure(self) -> None:
        task = self._task
        error = task.exception() if task and not task.cancelled() else None
        raise DefinitionLogError(
            f"the definition log stopped following {self._topic!r}: {error!r}"
        ) from error

    @contextlib.asynccontextmanager
    async def _definition_lock(self, definition_id: str) -> AsyncIterator[None]:
        """Hold the cross-replica lock of one definition id."""
        if self._redis is None:
            self._redis = redis.Redis.from_url(self._settings.redis.url)
        prefix = self._settings.topic_prefix
        name = f"signalflow:{prefix}definitions:lock:{definition_id}"
        lock = self._redis.lock(
            name,
            timeout=self._save_timeout_s * 3,
            blocking_timeout=self._save_timeout_s,
        )
        try:
            acquired = await lock.acquire()
        except LockError as error:
            raise SaveTimeoutError(
                f"cannot lock definition {definition_id!r}"
            ) from error
        if not acquired:
            raise SaveTimeoutError(
                f"definition {definition_id!r} stayed locked by another writer for"
                f" {self._save_timeout_s}s"
            )
        try:
            yield
        finally:
            with contextlib.suppress(LockError):
                await lock.release()

    async def _write(
        self, definition: Definition, *, version: int, deleted: bool
    ) -> None:
        record = to_record(
            definition, version=version, deleted=deleted, saved_at=datetime.now(UTC)
        )
        value = self._codec.encode(SCHEMA, record)
        offset = await self._produce(definition_key(definition.id, version), value)
        await self._wait_position(offset + 1, timeout_s=self._save_timeout_s)
        log.info(
            "saved %s %s@%d%s",
            kind_of(definition).value.lower(),
            definition.id,
            version,
            " (deleted)" if deleted else "",
        )

    async def _produce(self, key: bytes, value: bytes) -> int:
        """Produce one record and return its offset once the broker has it."""
        if self._producer is None:
            raise LogNotRunningError("the definition log is not running; start() it")
        producer = self._producer
        loop = asyncio.get_running_loop()
        delivered: asyncio.Future[int] = loop.create_future()

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            loop.call_soon_threadsafe(_settle, delivered, error, message)

        producer.produce(self._topic, value, key=key, on_delivery=on_delivery)
        await asyncio.to_thread(producer.flush, self._save_timeout_s)
        try:
            return await asyncio.wait_for(delivered, self._save_timeout_s)
        except TimeoutError:
            raise SaveTimeoutError(
                f"the broker did not acknowledge {key.decode()!r} within"
                f" {self._save_timeout_s}s"
            ) from None

    def _live_model(
        self, *, definition_id: str, version: int | None
    ) -> Definition | None:
        entry = self.entry(definition_id, version)
        if entry is None or entry.deleted:
            return None
        return entry.model


def _check_expected(
    definition_id: str, latest: StoredDefinition | None, expect: int | None
) -> None:
    if expect is None:
        return
    current = 0 if latest is None else latest.version
    if current != expect:
        raise VersionConflictError(definition_id, expected=expect, found=current)


# Errors of a partition whose leader is not known yet, e.g. just after creation.
_TRANSIENT_CODES = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
    }
)


def _transient(error: KafkaException) -> bool:
    reason = error.args[0]
    return bool(reason.retriable()) or reason.code() in _TRANSIENT_CODES


def _settle(
    future: asyncio.Future[int], error: KafkaError | None, message: Message
) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(
            SaveTimeoutError(f"the broker refused the definition: {error}")
        )
        return
    future.set_result(_offset_of(message))


def _offset_of(message: Message) -> int:
    offset = message.offset()
    if offset is None:  # only records from a partition have offsets
        raise KafkaException(KafkaError(KafkaError._BAD_MSG, "record without offset"))
    return int(offset)
