"""Results of test runs and dry runs, kept in Redis so any api replica can answer.

A test or dry run is a control command (TEST_RUN, DRY_RUN); the matcher enrolls up
to N prospects in that mode, and every enrollment carries the command's id. The
`RunResultRecorder` consumes `enrollments`, `step-results` and `runs` in the api's
consumer group and appends what concerns a test or dry run to a Redis stream per
command id; `RunResultStore` reads it back as a report per prospect and step, and as
events for a server-sent-events stream.

Key layout (every key starts with `signalflow:<topic prefix>api:`):

    cmd:<command id>             hash: workflow_id, workflow_version, mode, limit,
                                 issued_at (written when the command is sent)
    cmd:<command id>:events      stream of events: kind (enrolled|step|run), data
    cmd:<command id>:seen        hash of event keys already appended (no duplicate
                                 event after a redelivered batch)
    run:<run id>                 the command id a test/dry run belongs to
    orphan:<run id>              a run's end that arrived before its command was
                                 known (the three topics are read independently)

A run's end (`runs`) does not carry the command id, so it is attached through
`run:<run id>`, which the enrollment and every step result write. Both writes are
Lua scripts, so an end that arrives first is parked as an orphan and moved to the
stream by whichever write comes next, atomically. The scripts build key names
from values they read, which a single Redis (not Redis Cluster) allows. Every key
expires after `test_run_ttl_s`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Message
from redis.asyncio import Redis

from signalflow.contracts import Codec, DecodeError
from signalflow.kafka.clients import group_id, make_consumer
from signalflow.kafka.stream import BatchStream
from signalflow.settings import Settings
from signalflow.topics import Topics

log = logging.getLogger(__name__)

TRIAL_MODES = frozenset({"TEST", "DRY_RUN"})

# KEYS: run key, orphan key, events stream, seen hash
# ARGV: command id, ttl, kind, data, event key, run id
_RECORD_EVENT = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
local added = 0
if redis.call('HSETNX', KEYS[4], ARGV[5], '1') == 1 then
  redis.call('XADD', KEYS[3], '*', 'kind', ARGV[3], 'data', ARGV[4])
  added = 1
end
local orphan = redis.call('GET', KEYS[2])
if orphan then
  if redis.call('HSETNX', KEYS[4], 'run:' .. ARGV[6], '1') == 1 then
    redis.call('XADD', KEYS[3], '*', 'kind', 'run', 'data', orphan)
  end
  redis.call('DEL', KEYS[2])
end
redis.call('EXPIRE', KEYS[3], ARGV[2])
redis.call('EXPIRE', KEYS[4], ARGV[2])
return added
"""

# KEYS: run key, orphan key
# ARGV: key root, ttl, data, run id
_RECORD_RUN_END = """
local command = redis.call('GET', KEYS[1])
if not command then
  redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[2])
  return 0
end
local stream = ARGV[1] .. 'cmd:' .. command .. ':events'
local seen = ARGV[1] .. 'cmd:' .. command .. ':seen'
if redis.call('HSETNX', seen, 'run:' .. ARGV[4], '1') == 1 then
  redis.call('XADD', stream, '*', 'kind', 'run', 'data', ARGV[3])
end
redis.call('EXPIRE', stream, ARGV[2])
redis.call('EXPIRE', seen, ARGV[2])
return 1
"""


@dataclass(frozen=True)
class TrialEvent:
    """One event of a test or dry run, as stored and as streamed."""

    event_id: str
    kind: str
    data: dict[str, Any]


@dataclass(frozen=True)
class TrialCommand:
    """What the api recorded when it sent a TEST_RUN or DRY_RUN command."""

    command_id: str
    workflow_id: str
    workflow_version: int
    mode: str
    limit: int
    issued_at: datetime


class RunResultStore:
    """Reads and writes test and dry-run results under one environment's keys."""

    def __init__(self, redis: Redis, *, topic_prefix: str, ttl_s: int) -> None:
        self._redis = redis
        self._root = f"signalflow:{topic_prefix}api:"
        self._ttl_s = ttl_s
        self._record_event = redis.register_script(_RECORD_EVENT)
        self._record_run_end = redis.register_script(_RECORD_RUN_END)

    # ----------------------------------------------------------------- commands

    async def remember_command(self, command: TrialCommand) -> None:
        """Record a test or dry-run command, before it is sent."""
        key = self._key("cmd", command.command_id)
        await self._redis.hset(
            key,
            mapping={
                "workflow_id": command.workflow_id,
                "workflow_version": command.workflow_version,
                "mode": command.mode,
                "limit": command.limit,
                "issued_at": command.issued_at.isoformat(),
            },
        )
        await self._redis.expire(key, self._ttl_s)

    async def command(self, command_id: str) -> TrialCommand | None:
        """Return the recorded command, or None when unknown or expired."""
        raw = await self._redis.hgetall(self._key("cmd", command_id))
        if not raw:
            return None
        fields = {_text(k): _text(v) for k, v in raw.items()}
        return TrialCommand(
            command_id=command_id,
            workflow_id=fields["workflow_id"],
            workflow_version=int(fields["workflow_version"]),
            mode=fields["mode"],
            limit=int(fields["limit"]),
            issued_at=datetime.fromisoformat(fields["issued_at"]),
        )

    # ------------------------------------------------------------------- events

    async def record(self, command_id: str, kind: str, data: dict[str, Any]) -> None:
        """Append an `enrolled` or `step` event of a run to its command's stream."""
        run_id = data["run_id"]
        event_key = _event_key(kind, data)
        await self._record_event(
            keys=[
                self._key("run", run_id),
                self._key("orphan", run_id),
                self._key("cmd", command_id, "events"),
                self._key("cmd", command_id, "seen"),
            ],
            args=[command_id, self._ttl_s, kind, _dumps(data), event_key, run_id],
        )

    async def record_run_end(self, data: dict[str, Any]) -> None:
        """Append a run's end to the stream of the command it belongs to."""
        run_id = data["run_id"]
        await self._record_run_end(
            keys=[self._key("run", run_id), self._key("orphan", run_id)],
            args=[self._root, self._ttl_s, _dumps(data), run_id],
        )

    async def events(self, command_id: str) -> list[TrialEvent]:
        """Return every event of a command so far, in arrival order."""
        entries: Any = await self._redis.xrange(self._key("cmd", command_id, "events"))
        return [_event(entry_id, fields) for entry_id, fields in entries]

    async def follow(
        self, command_id: str, *, after: str = "0", block_s: float
    ) -> AsyncIterator[TrialEvent | None]:
        """Yield events after `after`, as they arrive; None after each quiet
        `block_s` (so a caller can send a keep-alive). Never ends by itself."""
        key = self._key("cmd", command_id, "events")
        last = after
        while True:
            answer: Any = await self._redis.xread(
                {key: last}, block=int(block_s * 1000), count=100
            )
            if not answer:
                yield None
                continue
            for entry_id, fields in answer[0][1]:
                event = _event(entry_id, fields)
                last = event.event_id
                yield event

    def _key(self, *parts: str) -> str:
        return self._root + ":".join(parts)


class RunResultRecorder:
    """Consumes run events in the api's group and records test and dry runs.

    Live runs are skipped after one decode. Records that cannot be decoded are
    logged and skipped: the services that own those topics send them to
    dead-letters already. `stop()` waits for the batch in hand, commits it and
    closes the consumer.
    """

    def __init__(self, settings: Settings, codec: Codec, store: RunResultStore) -> None:
        topics = Topics(settings)
        self._settings = settings
        self._codec = codec
        self._store = store
        self._enrollments = topics.name("enrollments")
        self._step_results = topics.name("step-results")
        self._runs = topics.name("runs")
        self._stream: BatchStream | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Join the api's consumer group and record in the background."""
        consumer = make_consumer(self._settings, group_id(self._settings, "api"))
        self._stream = BatchStream(
            consumer,
            [self._enrollments, self._step_results, self._runs],
            self.handle,
            producer=None,
            batch_size=500,
        )
        self._task = asyncio.create_task(self._stream.run(), name="run-results")
        self._task.add_done_callback(_report_end)

    async def stop(self) -> None:
        """Finish the batch in hand, commit it and leave the group."""
        if self._stream is not None:
            self._stream.stop()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def handle(self, batch: Sequence[Message]) -> None:
        """Record the test and dry-run events of one batch."""
        for message in batch:
            topic = message.topic()
            try:
                if topic == self._enrollments:
                    await self._enrollment(message.value() or b"")
                elif topic == self._step_results:
                    await self._step_result(message.value() or b"")
                elif topic == self._runs:
                    await self._run(message.value() or b"")
            except DecodeError as error:
                log.warning(
                    "skipped an undecodable record %s[%d]@%d: %s",
                    topic,
                    message.partition(),
                    message.offset(),
                    error,
                )

    async def _enrollment(self, value: bytes) -> None:
        enrollment = self._codec.decode("enrollment", value)
        if enrollment["mode"] not in TRIAL_MODES or not enrollment["command_id"]:
            return
        await self._store.record(
            enrollment["command_id"], "enrolled", enrolled_event(enrollment)
        )

    async def _step_result(self, value: bytes) -> None:
        result = self._codec.decode("step_result", value)
        command = self._codec.decode("step_command", result["command"])
        enrollment = command["enrollment"]
        if command["mode"] not in TRIAL_MODES or not enrollment["command_id"]:
            return
        await self._store.record(
            enrollment["command_id"], "step", step_event(result, command)
        )

    async def _run(self, value: bytes) -> None:
        run = self._codec.decode("run", value)
        if run["mode"] not in TRIAL_MODES:
            return
        await self._store.record_run_end(run_event(run))


def _report_end(task: asyncio.Task[None]) -> None:
    """Log a recorder that died; `/health` then reports the api degraded."""
    if not task.cancelled() and task.exception() is not None:
        log.error("recording test and dry runs stopped", exc_info=task.exception())


def enrolled_event(enrollment: dict[str, Any]) -> dict[str, Any]:
    """The `enrolled` event of a test or dry run."""
    return {
        "run_id": enrollment["run_id"],
        "person_key": enrollment["person_key"],
        "account_key": enrollment["account_key"],
        "mode": enrollment["mode"],
        "workflow_version": enrollment["workflow_version"],
        "enrolled_at": _iso(enrollment["enrolled_at"]),
    }


def step_event(result: dict[str, Any], command: dict[str, Any]) -> dict[str, Any]:
    """The `step` event: one attempt of one step of a test or dry run."""
    enrollment = command["enrollment"]
    return {
        "run_id": result["run_id"],
        "person_key": enrollment["person_key"],
        "account_key": enrollment["account_key"],
        "enrolled_at": _iso(enrollment["enrolled_at"]),
        "step_id": result["step_id"],
        "action_type": command["action_type"],
        "attempt": result["attempt"],
        "status": result["status"],
        "retryable": result["retryable"],
        "error": result["error"],
        "outputs": dict(result["outputs"]),
        "finished_at": _iso(result["finished_at"]),
    }


def run_event(run: dict[str, Any]) -> dict[str, Any]:
    """The `run` event: the end of a test or dry run."""
    return {
        "run_id": run["run_id"],
        "person_key": run["person_key"],
        "account_key": run["account_key"],
        "status": run["status"],
        "failed_step": run["failed_step"],
        "error": run["error"],
        "started_at": _iso(run["started_at"]),
        "ended_at": _iso(run["ended_at"]),
        "steps_ok": run["steps_ok"],
        "steps_failed": run["steps_failed"],
    }


def _event_key(kind: str, data: dict[str, Any]) -> str:
    if kind == "step":
        return f"step:{data['run_id']}:{data['step_id']}:{data['attempt']}"
    return f"{kind}:{data['run_id']}"


def _event(entry_id: bytes | str, fields: dict[Any, Any]) -> TrialEvent:
    decoded = {_text(k): _text(v) for k, v in fields.items()}
    return TrialEvent(_text(entry_id), decoded["kind"], json.loads(decoded["data"]))


def _iso(moment: datetime | int) -> str:
    if isinstance(moment, int):
        moment = datetime.fromtimestamp(moment / 1000, tz=UTC)
    return moment.isoformat()


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
