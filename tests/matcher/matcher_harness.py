"""A partition matcher on in-memory state, a test clock and the real Redis.

Fakes sit at the matcher's own seams only: definitions come from a dict, and the
outbox keeps what would be sent (numbering offsets like a partition would). Each
helper settles the matcher after its record, as the worker does before it writes
a batch out.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import redis.asyncio as redis

from services.matcher.catalog import Catalog
from services.matcher.clock import TestClock
from services.matcher.engine import PartitionMatcher
from services.matcher.limits import SharedLimits
from services.matcher.settings import MatcherSettings
from services.matcher.store import PartitionState
from signalflow.workflow import Audience, Workflow

Json = dict[str, Any]
T = TypeVar("T")

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # a Monday

NOTIFY_STEP = {
    "kind": "delay",
    "params": {"minutes": 1},
}


@dataclass
class Definitions:
    """Saved definitions by id and version."""

    workflows: dict[tuple[str, int], Workflow] = field(default_factory=dict)
    saved: dict[str, Audience] = field(default_factory=dict)

    def workflow(self, workflow_id: str, version: int | None = None) -> Workflow | None:
        if version is None:
            versions = [v for (w, v) in self.workflows if w == workflow_id]
            version = max(versions, default=0)
        return self.workflows.get((workflow_id, version))

    def audience(self, audience_id: str, version: int | None = None) -> Audience | None:
        return self.saved.get(audience_id)

    def audiences(self) -> dict[str, Audience]:
        return dict(self.saved)


@dataclass(frozen=True)
class Delivered:
    """Enrollments the recording outbox has kept, acknowledged at once."""

    numbers: list[int]

    async def offsets(self) -> list[int]:
        return list(self.numbers)


@dataclass
class RecordingOutbox:
    """Keeps what the matcher sends, numbering enrollments like a partition."""

    enrollments: list[Json] = field(default_factory=list)
    statuses: list[Json] = field(default_factory=list)
    handovers: list[Json] = field(default_factory=list)

    async def send_enrollments(
        self, partition: int, records: Sequence[Json]
    ) -> Delivered:
        first = len(self.enrollments)
        self.enrollments.extend(records)
        return Delivered(list(range(first, first + len(records))))

    async def send_status(self, record: Json) -> None:
        self.statuses.append(record)

    async def send_handover(self, record: Json) -> Awaitable[None]:
        self.handovers.append(record)
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        delivered.set_result(None)
        return delivered

    def people(self, workflow_id: str | None = None, mode: str = "LIVE") -> list[str]:
        return [
            e["person_key"]
            for e in self.enrollments
            if e["mode"] == mode and workflow_id in (None, e["workflow_id"])
        ]


class Harness:
    """One partition's matcher with helpers to feed it: partition 0 of 1 unless
    told otherwise."""

    def __init__(
        self,
        redis_client: redis.Redis,
        *,
        partition: int = 0,
        partitions: int = 1,
        **settings: Any,
    ) -> None:
        self.partition = partition
        self.partitions = partitions
        self.clock = TestClock(START)
        self.definitions = Definitions()
        self.outbox = RecordingOutbox()
        self.catalog = Catalog(self.definitions, wait_s=0.2, poll_s=0.05)
        self.limits = SharedLimits(redis_client, prefix=f"t{uuid.uuid4().hex[:8]}.")
        self.settings = MatcherSettings(**settings)
        self.state = PartitionState.in_memory()
        self.matcher = self.new_matcher()
        self._commands = 0
        self._signals = 0

    def new_matcher(self) -> PartitionMatcher:
        """A matcher over the same state (as after a restart)."""
        return PartitionMatcher(
            self.partition,
            self.state,
            partitions=self.partitions,
            catalog=self.catalog,
            limits=self.limits,
            outbox=self.outbox,
            clock=self.clock,
            settings=self.settings,
        )

    # definitions

    def save(
        self,
        audience_filter: Json,
        *,
        workflow_id: str = "wf",
        version: int = 1,
        **workflow: Any,
    ) -> None:
        audience_id = f"{workflow_id}-audience"
        self.definitions.saved[audience_id] = Audience.model_validate(
            {"id": audience_id, "name": audience_id, "filter": audience_filter}
        )
        body = {
            "id": workflow_id,
            "name": workflow_id,
            "audience_id": audience_id,
            "steps": [NOTIFY_STEP],
            "status": "active",
            **workflow,
        }
        self.definitions.workflows[(workflow_id, version)] = Workflow.model_validate(
            body
        )

    async def control(
        self,
        kind: str,
        *,
        workflow_id: str = "wf",
        version: int = 1,
        timing: str | None = None,
        limit: int | None = None,
        command_id: str | None = None,
    ) -> str:
        self._commands += 1
        command_id = command_id or f"cmd-{uuid.uuid4().hex[:8]}"
        await self.settled(
            self.matcher.on_control(
                {
                    "command_id": command_id,
                    "kind": kind,
                    "workflow_id": workflow_id,
                    "workflow_version": version,
                    "execution_timing": timing,
                    "limit": limit,
                    "issued_at": self.clock.now(),
                    "partition_count": 1,
                }
            )
        )
        return command_id

    async def activate(
        self,
        audience_filter: Json,
        *,
        timing: str = "ALL_CURRENT",
        workflow_id: str = "wf",
        **workflow: Any,
    ) -> None:
        self.save(audience_filter, workflow_id=workflow_id, **workflow)
        await self.control("ACTIVATE", workflow_id=workflow_id, timing=timing)

    # input

    async def person(
        self,
        key: str,
        account: str,
        *,
        email: str | None = "x@y.z",
        owner: str | None = None,
        last_activity: datetime | None = None,
        updated: datetime | None = None,
        deleted: bool = False,
        **fields: Any,
    ) -> None:
        await self.settled(
            self.matcher.on_profile(
                {
                    "key": key,
                    "kind": "PERSON",
                    "account_key": account,
                    "updated_at": updated or self.clock.now(),
                    "deleted": deleted,
                    "email": email,
                    "owner": owner,
                    "past_owners": [],
                    "last_activity_at": last_activity,
                    "fields": fields,
                }
            )
        )

    async def account(
        self,
        key: str,
        *,
        owner: str | None = None,
        updated: datetime | None = None,
        **fields: Any,
    ) -> None:
        await self.settled(
            self.matcher.on_profile(
                {
                    "key": key,
                    "kind": "ACCOUNT",
                    "account_key": key,
                    "updated_at": updated or self.clock.now(),
                    "deleted": False,
                    "email": None,
                    "owner": owner,
                    "past_owners": [],
                    "last_activity_at": None,
                    "fields": fields,
                }
            )
        )

    async def signal(
        self,
        kind: str,
        account: str,
        person: str | None = None,
        *,
        at: datetime | None = None,
        signal_id: str | None = None,
        **attributes: str,
    ) -> bool:
        self._signals += 1
        return await self.settled(
            self.matcher.on_signal(
                {
                    "signal_id": signal_id or f"s{self._signals}",
                    "type": kind,
                    "scope": "PERSON" if person else "COMPANY",
                    "account_key": account,
                    "person_key": person,
                    "occurred_at": at or self.clock.now(),
                    "source": "test",
                    "attributes": attributes,
                }
            )
        )

    async def tick(self, advance: timedelta | None = None) -> None:
        if advance is not None:
            self.clock.advance(advance)
        await self.settled(self.matcher.on_tick())

    async def take_over(self, handover: Json) -> None:
        """Feed a `person_handover` record another partition sent."""
        await self.settled(self.matcher.on_handover(handover))

    async def settled(self, step: Awaitable[T]) -> T:
        """Run one record's step, then settle its enrollments."""
        result = await step
        await self.matcher.settle()
        return result
