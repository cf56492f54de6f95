"""The matcher's own decisions without faust, Kafka or RocksDB, for comparison.

    python -m bench.matcher_engine [--people 100000] [--accounts 10000]
                                   [--signals 200000] [--audiences 1000 10000]

Feeds the same audiences, profiles and signals as `bench.matcher` to one
`PartitionMatcher` on in-memory state, in this process: every signal is decoded,
validated and evaluated as the worker does, and every enrollment is encoded;
caps still claim their places in Redis. What it measures is the cost of the
matcher's code alone, the part that faust's plumbing, the tables and the broker
come on top of. The last line printed is one JSON object: signals per second at
each audience count (`engine_msgs_per_s_1k`, ...) and their `engine_scaling`.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as redis

from bench.matcher import (
    MatcherRun,
    Scale,
    activation,
    console,
    definitions,
    encode_signals,
    label,
    profile_records,
    scale_arguments,
)
from services.matcher.catalog import Catalog
from services.matcher.clock import SystemClock
from services.matcher.engine import PartitionMatcher
from services.matcher.limits import SharedLimits
from services.matcher.settings import MatcherSettings
from services.matcher.store import PartitionState
from signalflow.contracts import Codec
from signalflow.contracts.inputs import validate_profile, validate_signal
from signalflow.local import ensure_redis
from signalflow.settings import RedisSettings, Settings
from signalflow.workflow import Audience, Workflow

Json = dict[str, Any]
SETTLE_EVERY = 1000
"""Signals between two settles, like a batch of the worker."""


class Definitions:
    """The benchmark's audiences and workflows, held in memory."""

    def __init__(self, pairs: Sequence[tuple[Audience, Workflow]]) -> None:
        self._audiences = {audience.id: audience for audience, _ in pairs}
        self._workflows = {workflow.id: workflow for _, workflow in pairs}

    def workflow(self, workflow_id: str, version: int | None = None) -> Workflow | None:
        return self._workflows.get(workflow_id)

    def audience(self, audience_id: str, version: int | None = None) -> Audience | None:
        return self._audiences.get(audience_id)

    def audiences(self) -> dict[str, Audience]:
        return dict(self._audiences)


@dataclass(frozen=True)
class Acknowledged:
    """Enrollments taken at once, numbered like a partition would."""

    numbers: list[int]

    async def offsets(self) -> list[int]:
        return self.numbers


class EncodingOutbox:
    """Encodes what the matcher sends, as the worker's outbox does, and keeps
    only the count."""

    def __init__(self, codec: Codec) -> None:
        self._codec = codec
        self.enrollments = 0

    async def send_enrollments(
        self, partition: int, records: Sequence[Json]
    ) -> Acknowledged:
        for record in records:
            self._codec.encode("enrollment", record)
        first = self.enrollments
        self.enrollments += len(records)
        return Acknowledged(list(range(first, self.enrollments)))

    async def send_status(self, record: Json) -> None:
        self._codec.encode("matcher_status", record)

    async def send_handover(self, record: Json) -> asyncio.Future[None]:
        raise AssertionError("one partition hands nobody over")


async def measure_engine(
    settings: Settings, codec: Codec, scale: Scale, audiences: int
) -> MatcherRun:
    """Activate `audiences` workflows, load the profiles, then time the signals
    through one partition's matcher."""
    pairs = list(definitions(audiences))
    client = redis.Redis.from_url(settings.redis.url)
    outbox = EncodingOutbox(codec)
    matcher = PartitionMatcher(
        0,
        PartitionState.in_memory(),
        partitions=1,
        catalog=Catalog(Definitions(pairs), wait_s=1.0),
        limits=SharedLimits(client, prefix=f"be{uuid.uuid4().hex[:6]}."),
        outbox=outbox,
        clock=SystemClock(),
        settings=MatcherSettings(),
    )
    try:
        await activate(matcher, [workflow.id for _, workflow in pairs])
        for record in profile_records(scale, datetime.now(UTC)):
            value = codec.encode("profile", record)
            await matcher.on_profile(validate_profile(codec.decode("profile", value)))
        await matcher.settle()
        encoded = encode_signals(codec, scale)
        before = outbox.enrollments
        started = time.perf_counter()
        for count, (_, value) in enumerate(encoded, 1):
            await matcher.on_signal(validate_signal(codec.decode("signal", value)))
            if count % SETTLE_EVERY == 0:
                await matcher.settle()
        await matcher.settle()
        seconds = time.perf_counter() - started
    finally:
        await client.aclose()
    run = MatcherRun(audiences, len(encoded), seconds, outbox.enrollments - before)
    console.log(
        f"engine alone, {audiences} audiences: {run.signals} signals in "
        f"{seconds:.1f} s ({run.msgs_per_s:,.0f}/s), {run.enrollments} enrollments"
    )
    return run


async def activate(matcher: PartitionMatcher, workflow_ids: list[str]) -> None:
    """Activate every workflow for future matches, as the api's command does."""
    now = datetime.now(UTC)
    for workflow_id in workflow_ids:
        await matcher.on_control(activation(workflow_id, now, partitions=1))


def report(runs: list[MatcherRun]) -> dict[str, Any]:
    results: dict[str, Any] = {
        f"engine_msgs_per_s_{label(run.audiences)}": round(run.msgs_per_s, 1)
        for run in runs
    }
    results["engine_scaling"] = round(runs[-1].msgs_per_s / runs[0].msgs_per_s, 4)
    return results


def main() -> None:
    scale, audience_counts = scale_arguments((__doc__ or "").splitlines()[0])
    settings = Settings()
    settings = settings.model_copy(
        update={"redis": RedisSettings(url=ensure_redis(settings))}
    )
    codec = Codec.load()
    runs = [
        asyncio.run(measure_engine(settings, codec, scale, count))
        for count in audience_counts
    ]
    print(json.dumps(report(runs)))


if __name__ == "__main__":
    main()
