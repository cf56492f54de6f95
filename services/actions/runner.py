"""Runs the step commands of a consumer's partitions concurrently, committing safely.

`CommandRunner` polls a confluent-kafka consumer in a worker thread and starts one
asyncio task per command. Within a partition up to `partition_concurrency`
commands run at once; in the whole process at most `max_in_flight`. Because they
finish out of order, each partition's offsets are tracked (`PartitionOffsets`) and
the stored offset is always the oldest unfinished command (or the one after the
last, when all are done), so a crash repeats unfinished commands and never skips
one. The consumer's background auto-commit commits what was stored.

Flow control: a partition with twice `partition_concurrency` unfinished commands
(running, or queued behind those running) is paused until no more than
`partition_concurrency` are left; when the whole process is full the loop stops
polling until a command finishes, and if none does for a while it pauses every
partition and keeps polling, so rebalances are still served.

Only the polling thread touches the consumer. Finished offsets, pauses and
resumes are queued and applied there between two polls: a consumer call from the
event loop could wait on librdkafka's locks while the polling thread sits in a
rebalance callback waiting for the event loop, and a resume must not re-fetch a
record the previous poll already returned.

A revoked partition gets `revoke_drain_s` for its running commands to finish; its
stored offset is committed before it goes. Commands still running after that are
handed back: the new owner runs them again and the idempotency record makes that
harmless.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as KafkaPartition

from services.actions.offsets import PartitionOffsets

log = logging.getLogger(__name__)

CommandHandler = Callable[[Message], Awaitable[None]]
TopicPartition = tuple[str, int]

#: How long the loop waits for a free slot before it pauses every partition.
FULL_WAIT_S = 1.0
#: How long the loop waits for a quarter of its slots to free before polling.
GATHER_WAIT_S = 0.005
#: A partition pauses with this many times its concurrency unfinished (running, or
#: queued behind those running), and resumes once no more than its concurrency
#: is left. Pausing drops what the client prefetched for the partition, so a
#: queue of waiting commands keeps the pauses rare.
PAUSE_FACTOR = 2
MAX_POLL_BATCH = 500


class RunnerClosedError(RuntimeError):
    """Raised when a runner is run twice."""


@dataclass
class _Partition:
    """The runner's view of one assigned partition."""

    topic: str
    partition: int
    semaphore: asyncio.Semaphore
    offsets: PartitionOffsets = field(default_factory=PartitionOffsets)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    paused: bool = False
    revoked: bool = False


class CommandRunner:
    """Consumes `topics` and runs `handler` on every record, concurrently.

    Args:
        consumer: created with `enable.auto.offset.store=false` (`make_consumer`).
        topics: full topic names to subscribe to.
        handler: performs one command completely (including producing its result
            and waiting for the acknowledgement). It must not raise for a bad
            command; an exception from it is a bug: the runner stops, leaves that
            offset uncommitted and re-raises from `run()`.
        max_in_flight: commands running at once in this runner.
        partition_concurrency: commands of one partition running at once.
        poll_timeout_s: how long one poll waits for a record.
        revoke_drain_s: how long a revoked partition's commands may finish.
    """

    def __init__(
        self,
        consumer: Consumer,
        topics: Sequence[str],
        handler: CommandHandler,
        *,
        max_in_flight: int,
        partition_concurrency: int,
        poll_timeout_s: float = 0.1,
        revoke_drain_s: float = 20.0,
    ) -> None:
        self._consumer = consumer
        self._topics = list(topics)
        self._handler = handler
        self._max_in_flight = max_in_flight
        self._partition_concurrency = partition_concurrency
        self._poll_timeout_s = poll_timeout_s
        self._revoke_drain_s = revoke_drain_s
        self._partitions: dict[TopicPartition, _Partition] = {}
        self._in_flight = 0
        self._slot_freed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pause_all = False
        self._flow_lock = threading.Lock()
        self._stores: dict[TopicPartition, int] = {}
        self._started = False
        self.records_done = 0
        self.duplicates_skipped = 0
        self.pauses = 0

    @property
    def in_flight(self) -> int:
        """Commands started and not yet finished."""
        return self._in_flight

    @property
    def assignment(self) -> set[TopicPartition]:
        """The partitions this runner owns right now."""
        return set(list(self._partitions))

    @property
    def paused(self) -> set[TopicPartition]:
        """The partitions paused for flow control right now."""
        return {key for key, state in list(self._partitions.items()) if state.paused}

    async def run(self) -> None:
        """Subscribe and run commands until `stop()` is called.

        Returns after the running commands finished (or `revoke_drain_s` passed),
        the stored offsets were committed and the consumer closed. Raises
        RunnerClosedError when called twice, and re-raises what a handler raised.
        """
        if self._started:
            raise RunnerClosedError("a CommandRunner runs once; create a new one")
        self._started = True
        self._loop = asyncio.get_running_loop()
        self._consumer.subscribe(
            self._topics,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        try:
            await self._poll_until_stopped()
            await self._finish_running(self._revoke_drain_s)
        finally:
            await asyncio.to_thread(self._close)
        if self._failure is not None:
            raise self._failure

    def stop(self) -> None:
        """Ask the runner to stop polling, finish what runs, commit and close."""
        self._stopping.set()
        self._slot_freed.set()

    async def _poll_until_stopped(self) -> None:
        while not self._stopping.is_set():
            if self._in_flight >= self._max_in_flight:
                await self._wait_for_slot()
                continue
            await self._gather_room()
            self._pause_all = False
            room = min(MAX_POLL_BATCH, self._max_in_flight - self._in_flight)
            batch = await asyncio.to_thread(self._poll, room)
            for message in batch:
                self._start(message)

    async def _gather_room(self) -> None:
        """With only a few free slots, wait a moment for more to free up.

        Each poll is a hop to a worker thread; when the process is busy, letting
        a few more commands finish first lets one poll feed several of them.
        """
        wanted = max(1, self._max_in_flight // 4)
        deadline = asyncio.get_running_loop().time() + GATHER_WAIT_S
        while self._in_flight and self._max_in_flight - self._in_flight < wanted:
            remaining_s = deadline - asyncio.get_running_loop().time()
            if remaining_s <= 0 or self._stopping.is_set():
                return
            self._slot_freed.clear()
            try:
                await asyncio.wait_for(self._slot_freed.wait(), remaining_s)
            except TimeoutError:
                return

    async def _wait_for_slot(self) -> None:
        self._slot_freed.clear()
        try:
            await asyncio.wait_for(self._slot_freed.wait(), FULL_WAIT_S)
        except TimeoutError:
            # Still full: keep polling with every partition paused, so the group's
            # rebalances are served while the running commands take their time.
            self._pause_all = True
            for message in await asyncio.to_thread(self._poll, 1):
                # Only a partition assigned during this poll can have delivered.
                self._start(message)

    def _start(self, message: Message) -> None:
        key = _position(message)
        offset = _offset(message)
        state = self._partitions.get(key)
        if state is None or state.revoked:
            # A record of a partition revoked while the poll returned: its new
            # owner runs it.
            return
        if not state.offsets.started(offset):
            self.duplicates_skipped += 1
            log.debug("skipping %s[%d]@%d: already seen", *key, offset)
            return
        self._in_flight += 1
        task = asyncio.create_task(self._run_one(state, message))
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)

    async def _run_one(self, state: _Partition, message: Message) -> None:
        try:
            async with state.semaphore:
                await self._handler(message)
        except asyncio.CancelledError:
            self._in_flight -= 1
            self._slot_freed.set()
            raise
        except BaseException as error:
            self._in_flight -= 1
            self._fail(error, message)
            return
        self._in_flight -= 1
        self.records_done += 1
        self._slot_freed.set()
        self._store(state, state.offsets.finished(_offset(message)))

    def _store(self, state: _Partition, point: int | None) -> None:
        """Queue `point` as the partition's offset for the polling thread to store."""
        if point is None:
            return
        with self._flow_lock:
            if not state.revoked:
                self._stores[(state.topic, state.partition)] = point

    def _fail(self, error: BaseException, message: Message) -> None:
        log.error(
            "handler failed on %s[%d]@%d; stopping without committing it",
            message.topic(),
            message.partition(),
            message.offset(),
            exc_info=error,
        )
        if self._failure is None:
            self._failure = error
        self.stop()

    async def _finish_running(self, timeout_s: float) -> None:
        tasks = [task for state in self._partitions.values() for task in state.tasks]
        await _wait_or_cancel(tasks, timeout_s)

    # --- the polling thread ---------------------------------------------------

    def _poll(self, room: int) -> list[Message]:
        self._apply_stores()
        self._apply_flow_control()
        messages = self._consumer.consume(room, self._poll_timeout_s)
        return [message for message in messages if not _is_error(message)]

    def _apply_stores(self) -> None:
        with self._flow_lock:
            stores, self._stores = self._stores, {}
        offsets = [
            KafkaPartition(topic, partition, point)
            for (topic, partition), point in stores.items()
            if (topic, partition) in self._partitions
        ]
        if not offsets:
            return
        try:
            self._consumer.store_offsets(offsets=offsets)
        except KafkaException as error:
            log.debug("could not store offsets %s: %s", offsets, error)

    def _apply_flow_control(self) -> None:
        with self._flow_lock:
            to_pause: list[_Partition] = []
            to_resume: list[_Partition] = []
            for state in list(self._partitions.values()):
                want = self._wants_pause(state)
                if want and not state.paused:
                    to_pause.append(state)
                elif not want and state.paused:
                    to_resume.append(state)
            if to_pause:
                self._consumer.pause(_kafka_partitions(to_pause))
                self.pauses += len(to_pause)
            if to_resume:
                self._consumer.resume(_kafka_partitions(to_resume))
            for state in to_pause:
                state.paused = True
            for state in to_resume:
                state.paused = False

    def _wants_pause(self, state: _Partition) -> bool:
        if self._pause_all:
            return True
        in_flight = state.offsets.in_flight
        if state.paused:
            return in_flight > self._partition_concurrency
        return in_flight >= PAUSE_FACTOR * self._partition_concurrency

    def _on_assign(self, consumer: Consumer, partitions: list[Any]) -> None:
        for item in partitions:
            self._partitions[(item.topic, item.partition)] = _Partition(
                item.topic,
                item.partition,
                asyncio.Semaphore(self._partition_concurrency),
            )
        log.info("assigned %s", _describe(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[Any]) -> None:
        states = self._take_states(partitions)
        self._drain(states)
        with self._flow_lock:
            for state in states:
                state.revoked = True
                self._stores.pop((state.topic, state.partition), None)
        final = [
            KafkaPartition(state.topic, state.partition, point)
            for state in states
            if (point := state.offsets.commit_point()) is not None
        ]
        try:
            if final:
                consumer.store_offsets(offsets=final)
            consumer.commit(asynchronous=False)
        except KafkaException as error:
            if error.args[0].code() != KafkaError._NO_OFFSET:
                log.warning("commit on revoke failed: %s", error)
        log.info("revoked %s", _describe(partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[Any]) -> None:
        # The group moved on without us: nothing may be committed for these.
        for state in self._take_states(partitions):
            state.revoked = True
        log.warning("lost %s; their running commands will run again", partitions)

    def _take_states(self, partitions: list[Any]) -> list[_Partition]:
        with self._flow_lock:
            return [
                state
                for item in partitions
                if (state := self._partitions.pop((item.topic, item.partition), None))
            ]

    def _drain(self, states: list[_Partition]) -> None:
        """Wait, from the polling thread, for the states' commands to finish."""
        tasks = [task for state in states for task in state.tasks]
        if not tasks or self._loop is None or self._loop.is_closed():
            return
        waiting = asyncio.run_coroutine_threadsafe(
            _wait_or_cancel(tasks, self._revoke_drain_s, cancel=False), self._loop
        )
        unfinished = waiting.result()
        if unfinished:
            log.warning(
                "handing back %d unfinished commands of revoked partitions",
                unfinished,
            )

    def _close(self) -> None:
        self._apply_stores()
        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as error:
            if error.args[0].code() != KafkaError._NO_OFFSET:
                log.warning("final commit failed: %s", error)
        self._consumer.close()
        log.info(
            "command runner on %s closed after %d commands",
            self._topics,
            self.records_done,
        )


async def _wait_or_cancel(
    tasks: list[asyncio.Task[None]], timeout_s: float, *, cancel: bool = True
) -> int:
    """Wait up to `timeout_s` for `tasks`; return how many did not finish.

    With `cancel`, the unfinished ones are cancelled (and awaited).
    """
    if not tasks:
        return 0
    _done, pending = await asyncio.wait(tasks, timeout=timeout_s)
    if cancel and pending:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    return len(pending)


def _position(message: Message) -> TopicPartition:
    topic, partition = message.topic(), message.partition()
    if topic is None or partition is None:
        raise ValueError(f"expected a consumed record, got {message!r}")
    return topic, partition


def _offset(message: Message) -> int:
    offset = message.offset()
    if offset is None:
        raise ValueError(f"expected a consumed record with an offset, got {message!r}")
    return offset


def _kafka_partitions(states: list[_Partition]) -> list[KafkaPartition]:
    return [KafkaPartition(state.topic, state.partition) for state in states]


def _is_error(message: Message) -> bool:
    error = message.error()
    if error is None:
        return False
    if error.code() != KafkaError._PARTITION_EOF:
        log.warning("consumer error on %s: %s", message.topic(), error)
    return True


def _describe(partitions: list[Any]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing"
