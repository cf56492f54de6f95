"""Records in batches: what the worker holds between two write-outs.

The worker processes each record at once, but what it changes stays in memory
(`services.matcher.tables.PartitionTables`) and the record is not acknowledged to
faust yet: faust commits only acknowledged offsets. `Batcher.flush()` ends a
batch, for every partition the worker owns, in this order:

1. settle: wait until the broker acknowledged every enrollment sent in the batch
   (one wait per batch, not one per record);
2. write the tables out (RocksDB, and the changelog through faust's producer)
   and wait until the broker acknowledged the changelog records;
3. acknowledge the batch's records to faust, whose next commit covers their
   offsets.

A batch ends when it is `flush_interval_s` old or holds `flush_records` records
(checked after each record), and `run()` ends it on time when no record comes,
which also serves faust's waits for acknowledgements before a rebalance or a
stop. It also ends, delivered to Kafka, before a control command follows other
records or another record follows control commands (rule 2 of
`services.matcher.app`): a batch that ended on time is delivered then, before
the record of the other kind is processed. One lock covers a record's processing
and a flush, so a batch never holds half a record.

A batch that cannot be written out (the broker did not take an enrollment, a
handover or a changelog record) leaves the worker's memory ahead of Kafka, and
nothing the worker does next may be acknowledged. The batcher then calls its
`stop` at once, which stops the worker as a crash would (its records are
processed again from the committed offsets, its tables rebuilt from the
changelogs), and refuses every later flush.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from services.matcher.engine import PartitionMatcher
from services.matcher.tables import PartitionTables

log = logging.getLogger(__name__)

Acknowledge = Callable[[Any], Awaitable[Any]]
"""Acknowledges one faust event (`Stream.ack`)."""

Stop = Callable[[BaseException], None]
"""Stops the worker at once, as a crash would, after a batch failed."""


class BatchFailedError(RuntimeError):
    """A batch could not be written out; the worker must stop."""


@dataclass
class OwnedPartition:
    """A partition the worker owns: its matcher, its tables, its held records."""

    matcher: PartitionMatcher
    tables: PartitionTables
    held: list[Any] = field(default_factory=list)


class Batcher:
    """Holds processed records and ends batches (see the module docstring).

    Args:
        interval_s: the longest a batch lasts.
        max_records: the most records a batch holds.
        name_of: the logical input name of a topic, for the counts in `done`.
        deliver: waits until the producer delivered everything it was handed.
        stop: called with the error when a batch cannot be written out.
    """

    def __init__(
        self,
        *,
        interval_s: float,
        max_records: int,
        name_of: Callable[[str], str],
        deliver: Callable[[], Awaitable[None]],
        stop: Stop,
    ) -> None:
        self.lock = asyncio.Lock()
        self.partitions: dict[int, OwnedPartition] = {}
        self.acknowledge: Acknowledge | None = None
        self.done: Counter[str] = Counter()
        self._interval_s = interval_s
        self._max_records = max_records
        self._name_of = name_of
        self._deliver = deliver
        self._stop = stop
        self._held = 0
        self._commands = False
        self._undelivered = False
        self._failure: BaseException | None = None
        self._started = time.monotonic()

    def hold(self, partition: OwnedPartition, event: Any, *, command: bool) -> None:
        """Keep a processed record until its batch is written out. Call under
        `lock`, right after processing it; `command` says whether it was a
        control command."""
        partition.held.append(event)
        if self._held == 0:
            self._started = time.monotonic()
            self._commands = command
        self._held += 1

    def crosses(self, *, command: bool) -> bool:
        """Whether a record of this kind must wait for the batch to end and be
        delivered: a batch holds control commands or other records, never both,
        and the last batch is delivered before a record of the other kind (see
        `services.matcher.app`, rule 2)."""
        waiting = self._held > 0 or self._undelivered
        return waiting and command != self._commands

    def due(self) -> bool:
        """Whether the current batch should end now."""
        if self._held == 0:
            return False
        if self._held >= self._max_records:
            return True
        return time.monotonic() - self._started >= self._interval_s

    async def flush(self, *, deliver: bool = False) -> int:
        """End the batch: settle, write out, acknowledge. Returns how many records
        it held. With `deliver`, also wait until the producer delivered every
        write before acknowledging (or, with no batch held, the last batch's).

        When settling, writing out or delivering fails, nothing more is written
        or acknowledged: `stop` is called and the error raised, and every later
        flush raises BatchFailedError.
        """
        async with self.lock:
            if self._failure is not None:
                raise BatchFailedError(
                    f"expected the worker to have stopped after a batch failed "
                    f"({self._failure!r}); nothing more is written out"
                ) from self._failure
            try:
                return await self._end_batch(deliver=deliver)
            except Exception as error:
                self._failure = error
                self._stop(error)
                raise

    async def _end_batch(self, *, deliver: bool) -> int:
        if self._held == 0:
            if deliver and self._undelivered:
                await self._deliver()
                self._undelivered = False
            return 0
        owned = list(self.partitions.values())
        for partition in owned:
            await partition.matcher.settle()
        writes = [partition.tables.write_out() for partition in owned]
        written = sum(await asyncio.gather(*writes))
        if deliver:
            await self._deliver()
        self._undelivered = not deliver
        held = [event for partition in owned for event in partition.held]
        for partition in owned:
            partition.held = []
        await self._acknowledge(held)
        self._held = 0
        log.debug("wrote %d keys out for %d records", written, len(held))
        return len(held)

    def drop(self, partition: int) -> None:
        """Forget a partition that was revoked, with what it holds: its records
        were not acknowledged, so its next owner processes them again."""
        owned = self.partitions.pop(partition, None)
        if owned is None:
            return
        owned.matcher.release_all()
        self._held -= len(owned.held)
        if owned.held:
            log.warning(
                "partition %d was revoked with %d records not written out; its next "
                "owner processes them again",
                partition,
                len(owned.held),
            )

    async def run(self) -> None:
        """End batches on time while no record comes; runs until cancelled."""
        while True:
            await asyncio.sleep(self._interval_s / 2)
            if self.due():
                await self.flush()

    async def _acknowledge(self, events: list[Any]) -> None:
        if self.acknowledge is None:
            raise RuntimeError("expected the match agent to have started, it has not")
        for event in events:
            await self.acknowledge(event)
            self.done[self._name_of(event.message.topic)] += 1
