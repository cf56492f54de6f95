"""The monitoring figures, kept in Redis so every replica and the api share them.

Key layout (every key starts with `signalflow:<topic prefix>metrics:`):

    workflows                         set of workflow ids seen
    wf:<id>:partitions                hash partition -> latest matcher-status (JSON)
    wf:<id>:<mode>:totals             hash enrolled, done, ok, error
    wf:<id>:<mode>:steps              hash <step_id>:ok|error|skipped|retried -> count
    wf:<id>:<mode>:day:<yyyymmdd>     hash enrolled:<HH>, done:<HH> (by hour),
                                      ok:<HHMM>, error:<HHMM> (runs by start minute)
    wf:<id>:<mode>:errors             list of the newest error samples (JSON)
    deadletters                       hash <source topic> -> count
    deadletters:recent                list of the newest dead letters (JSON)
    seen:<event id>                   marks an event counted (expires after a week)

Every count is taken at most once per event: a Lua script sets the event's `seen`
mark and increments in one atomic step, so a redelivered batch changes nothing.
Modes (live, test, dry-run) are kept apart, so test runs never touch live figures.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis

SEEN_TTL_S = 7 * 24 * 3600
DAY_TTL_S = 90 * 24 * 3600
ERROR_SAMPLES = 20

# KEYS[1] the seen mark, KEYS[2..n] hashes; ARGV[1] seen TTL, ARGV[2] day-hash TTL,
# ARGV[3] sample list key or "", ARGV[4] sample JSON, ARGV[5..] one field per hash.
_COUNT_ONCE = f"""
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
for i = 2, #KEYS do
  redis.call('HINCRBY', KEYS[i], ARGV[i + 3], 1)
  if string.find(KEYS[i], ':day:', 1, true) then
    redis.call('EXPIRE', KEYS[i], ARGV[2])
  end
end
if ARGV[3] ~= '' then
  redis.call('LPUSH', ARGV[3], ARGV[4])
  redis.call('LTRIM', ARGV[3], 0, {ERROR_SAMPLES - 1})
end
return 1
"""


@dataclass(frozen=True)
class Increment:
    """One event's counts: which hash fields to add one to, at most once."""

    event_id: str
    fields: Sequence[tuple[str, str]]
    sample_list: str = ""
    sample: dict[str, Any] | None = None


@dataclass
class WorkflowFigures:
    """What a revenue team watches for one workflow in one mode."""

    workflow_id: str
    mode: str
    pending: int = 0
    held_by_account_cap: int = 0
    held_by_rep_cap: int = 0
    expired: int = 0
    last_run_at: datetime | None = None
    last_run: dict[str, int] = field(default_factory=lambda: {"ok": 0, "error": 0})
    totals: dict[str, int] = field(default_factory=dict)
    steps: dict[str, dict[str, int]] = field(default_factory=dict)
    done_by_hour: dict[str, int] = field(default_factory=dict)
    recent_errors: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "workflow_id": self.workflow_id,
            "mode": self.mode,
            "pending": self.pending,
            "held_by_account_cap": self.held_by_account_cap,
            "held_by_rep_cap": self.held_by_rep_cap,
            "expired": self.expired,
            "last_run_at": self.last_run_at.isoformat() if self.last_run_at else None,
            "last_run": self.last_run,
            "totals": self.totals,
            "steps": self.steps,
            "done_by_hour": self.done_by_hour,
            "recent_errors": self.recent_errors,
        }


class MetricsStore:
    """Reads and writes the figures under one environment's key prefix."""

    def __init__(self, redis: Redis, *, topic_prefix: str) -> None:
        self._redis = redis
        self._root = f"signalflow:{topic_prefix}metrics:"
        self._count_once = redis.register_script(_COUNT_ONCE)

    def key(self, *parts: str) -> str:
        return self._root + ":".join(parts)

    def workflow_key(self, workflow_id: str, mode: str, *parts: str) -> str:
        return self.key("wf", workflow_id, mode, *parts)

    async def apply(self, increments: Iterable[Increment]) -> int:
        """Apply each increment once, in one round trip; return how many were new."""
        pipe = self._redis.pipeline(transaction=False)
        count = 0
        for increment in increments:
            keys = [self.key("seen", increment.event_id)]
            keys += [hash_key for hash_key, _ in increment.fields]
            args: list[Any] = [
                SEEN_TTL_S,
                DAY_TTL_S,
                increment.sample_list,
                json.dumps(increment.sample or {}, default=str),
            ]
            args += [field_name for _, field_name in increment.fields]
            await self._count_once(keys=keys, args=args, client=pipe)
            count += 1
        if not count:
            return 0
        results = await pipe.execute()
        return sum(int(result) for result in results)

    async def record_workflows(self, workflow_ids: Iterable[str]) -> None:
        ids = list(workflow_ids)
        if ids:
            await self._redis.sadd(self.key("workflows"), *ids)

    async def record_partition_status(self, status: dict[str, Any]) -> None:
        """Keep the newest matcher-status of one partition for one workflow."""
        key = self.key("wf", status["workflow_id"], "partitions")
        kept = {name: _epoch_ms(value) for name, value in status.items()}
        kept.pop("preview", None)
        await self._redis.hset(key, str(status["partition"]), json.dumps(kept))

    async def workflow_ids(self) -> list[str]:
        members = await self._redis.smembers(self.key("workflows"))
        return sorted(_text(member) for member in members)

    async def figures(
        self, workflow_id: str, *, mode: str = "LIVE", now: datetime | None = None
    ) -> WorkflowFigures:
        """Gather one workflow's figures; the last run counts runs started since it."""
        now = now or datetime.now(UTC)
        figures = WorkflowFigures(workflow_id=workflow_id, mode=mode)
        await self._add_partition_status(figures)
        totals = await self._redis.hgetall(
            self.workflow_key(workflow_id, mode, "totals")
        )
        figures.totals = {_text(k): int(v) for k, v in totals.items()}
        figures.steps = await self._steps(workflow_id, mode)
        figures.done_by_hour = await self._done_by_hour(workflow_id, mode, now)
        figures.last_run = await self._last_run(figures, now)
        samples = await self._redis.lrange(
            self.workflow_key(workflow_id, mode, "errors"), 0, ERROR_SAMPLES - 1
        )
        figures.recent_errors = [json.loads(sample) for sample in samples]
        return figures

    async def dead_letters(self) -> dict[str, Any]:
        counts = await self._redis.hgetall(self.key("deadletters"))
        recent = await self._redis.lrange(self.key("deadletters", "recent"), 0, 19)
        return {
            "by_source_topic": {_text(k): int(v) for k, v in counts.items()},
            "recent": [json.loads(item) for item in recent],
        }

    async def _add_partition_status(self, figures: WorkflowFigures) -> None:
        statuses = await self._redis.hvals(
            self.key("wf", figures.workflow_id, "partitions")
        )
        for raw in statuses:
            status = json.loads(raw)
            figures.pending += int(status["pending"])
            figures.held_by_account_cap += int(status["held_by_account_cap"])
            figures.held_by_rep_cap += int(status["held_by_rep_cap"])
            figures.expired += int(status["expired"])
            if status.get("last_run_at") is not None:
                at = datetime.fromtimestamp(status["last_run_at"] / 1000, UTC)
                if figures.last_run_at is None or at > figures.last_run_at:
                    figures.last_run_at = at

    async def _steps(self, workflow_id: str, mode: str) -> dict[str, dict[str, int]]:
        raw = await self._redis.hgetall(self.workflow_key(workflow_id, mode, "steps"))
        steps: dict[str, dict[str, int]] = {}
        for name, count in raw.items():
            step_id, _, outcome = _text(name).rpartition(":")
            steps.setdefault(step_id, {})[outcome] = int(count)
        return steps

    async def _done_by_hour(
        self, workflow_id: str, mode: str, now: datetime
    ) -> dict[str, int]:
        """Runs finished per hour over the last two days, oldest first."""
        series: dict[str, int] = {}
        for day in (now - timedelta(days=1), now):
            raw = await self._redis.hgetall(
                self.workflow_key(workflow_id, mode, "day", f"{day:%Y%m%d}")
            )
            for name, count in sorted(raw.items()):
                kind, _, hour = _text(name).partition(":")
                if kind == "done":
                    series[f"{day:%Y-%m-%d}T{hour}:00Z"] = int(count)
        return series

    async def _last_run(
        self, figures: WorkflowFigures, now: datetime
    ) -> dict[str, int]:
        """OK and errors of runs started since the last scheduled run.

        A realtime workflow has no scheduled run: its last run is the current day.
        """
        since = figures.last_run_at or now.replace(hour=0, minute=0, second=0)
        since = since.replace(second=0, microsecond=0)
        outcome = {"ok": 0, "error": 0}
        day = since
        while day.date() <= now.date():
            raw = await self._redis.hgetall(
                self.workflow_key(
                    figures.workflow_id, figures.mode, "day", f"{day:%Y%m%d}"
                )
            )
            for name, count in raw.items():
                kind, _, minute = _text(name).partition(":")
                if kind in outcome and _minute_of(day, minute) >= since:
                    outcome[kind] += int(count)
            day += timedelta(days=1)
        return outcome


def _minute_of(day: datetime, hhmm: str) -> datetime:
    return day.replace(
        hour=int(hhmm[:2]), minute=int(hhmm[2:]), second=0, microsecond=0
    )


def _epoch_ms(value: Any) -> Any:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return value


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
