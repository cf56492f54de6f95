"""The metrics service: turns the event topics into the figures in Redis.

It reads enrollments, step results, run ends, matcher status and dead letters, and
serves the figures as JSON (`/workflows`, `/workflows/{id}`, `/dead-letters`) and in
Prometheus' text format (`/metrics`) beside its health endpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from confluent_kafka import Message
from redis.asyncio import Redis

from services.metrics.exposition import render_prometheus
from services.metrics.store import Increment, MetricsStore
from signalflow.contracts import Codec, DecodeError
from signalflow.kafka.deadletters import DeadLetters
from signalflow.kafka.service import StreamService
from signalflow.kafka.stream import position
from signalflow.settings import Settings

log = logging.getLogger(__name__)

MODES = ("LIVE", "TEST", "DRY_RUN")


class MetricsService(StreamService):
    """Keeps pending, done over time, last run, OK and error figures per workflow."""

    name = "metrics"
    group = "metrics"

    def __init__(self, settings: Settings, *, redis: Redis | None = None) -> None:
        super().__init__(settings)
        self.codec = Codec.load()
        self.redis = redis or Redis.from_url(settings.redis.url)
        self.store = MetricsStore(self.redis, topic_prefix=settings.topic_prefix)
        self.dead_letters = DeadLetters(
            self.producer, self.topics, self.codec, service=self.name
        )
        self._readers: dict[str, Callable[[dict[str, Any]], Increment | None]] = {
            self.topics.name("enrollments"): self._enrollment,
            self.topics.name("step-results"): self._step_result,
            self.topics.name("runs"): self._run,
            self.topics.name("dead-letters"): self._dead_letter,
        }
        self._schemas = {
            self.topics.name("enrollments"): "enrollment",
            self.topics.name("step-results"): "step_result",
            self.topics.name("runs"): "run",
            self.topics.name("matcher-status"): "matcher_status",
            self.topics.name("dead-letters"): "dead_letter",
        }

    def input_topics(self) -> Sequence[str]:
        return list(self._schemas)

    async def handle(self, batch: Sequence[Message]) -> None:
        increments: list[Increment] = []
        workflows: set[str] = set()
        for message in batch:
            topic = position(message)[0]
            record = self._decode(topic, message)
            if record is None:
                continue
            if topic == self.topics.name("matcher-status"):
                await self.store.record_partition_status(record)
                workflows.add(record["workflow_id"])
                continue
            increment = self._readers[topic](record)
            if increment is not None:
                increments.append(increment)
            if "workflow_id" in record:
                workflows.add(record["workflow_id"])
        await self.store.record_workflows(workflows)
        counted = await self.store.apply(increments)
        log.debug("counted %d of %d events", counted, len(batch))

    def _decode(self, topic: str, message: Message) -> dict[str, Any] | None:
        schema = self._schemas[topic]
        try:
            record: dict[str, Any] = self.codec.decode(schema, message.value() or b"")
        except DecodeError as error:
            if topic != self.topics.name("dead-letters"):
                self.dead_letters.send(message, f"undecodable {schema}: {error}")
            else:
                log.error("undecodable dead letter at %d: %s", message.offset(), error)
            return None
        if topic == self.topics.name("step-results"):
            # Workflow and mode travel in the command the result answers.
            command = self.codec.decode("step_command", record["command"])
            record["workflow_id"] = command["workflow_id"]
            record["mode"] = command["mode"]
        return record

    def _enrollment(self, record: dict[str, Any]) -> Increment:
        key = self._key_for(record)
        day_key, hour, _ = self._day_fields(key, record["enrolled_at"])
        return Increment(
            event_id=f"enrollment:{record['run_id']}",
            fields=[(key("totals"), "enrolled"), (day_key, f"enrolled:{hour}")],
        )

    def _step_result(self, record: dict[str, Any]) -> Increment:
        key = self._key_for(record)
        status = str(record["status"]).lower()
        if status == "error" and record["retryable"]:
            status = "retried"
        return Increment(
            event_id=(
                f"step:{record['run_id']}:{record['step_id']}:{record['attempt']}"
            ),
            fields=[(key("steps"), f"{record['step_id']}:{status}")],
        )

    def _run(self, record: dict[str, Any]) -> Increment:
        key = self._key_for(record)
        outcome = "ok" if record["status"] == "OK" else "error"
        end_day, end_hour, _ = self._day_fields(key, record["ended_at"])
        start_day, _, start_minute = self._day_fields(key, record["started_at"])
        sample = None
        if outcome == "error":
            sample = {
                "run_id": record["run_id"],
                "person_key": record["person_key"],
                "step": record["failed_step"],
                "error": record["error"],
                "at": _iso(record["ended_at"]),
            }
        return Increment(
            event_id=f"run:{record['run_id']}",
            fields=[
                (key("totals"), "done"),
                (key("totals"), outcome),
                (end_day, f"done:{end_hour}"),
                (start_day, f"{outcome}:{start_minute}"),
            ],
            sample_list=key("errors") if sample else "",
            sample=sample,
        )

    def _dead_letter(self, record: dict[str, Any]) -> Increment:
        sample = {
            "source_topic": record["source_topic"],
            "partition": record["partition"],
            "offset": record["offset"],
            "service": record["service"],
            "error": record["error"],
            "at": _iso(record["failed_at"]),
        }
        return Increment(
            event_id=(
                f"dead:{record['source_topic']}:{record['partition']}:"
                f"{record['offset']}:{record['service']}"
            ),
            fields=[(self.store.key("deadletters"), record["source_topic"])],
            sample_list=self.store.key("deadletters", "recent"),
            sample=sample,
        )

    def _key_for(self, record: dict[str, Any]) -> Callable[..., str]:
        workflow_id, mode = record["workflow_id"], str(record["mode"])
        return lambda *parts: self.store.workflow_key(workflow_id, mode, *parts)

    @staticmethod
    def _day_fields(
        key: Callable[..., str], at: datetime | int
    ) -> tuple[str, str, str]:
        moment = _as_datetime(at)
        return key("day", f"{moment:%Y%m%d}"), f"{moment:%H}", f"{moment:%H%M}"

    async def _stop(self) -> None:
        await super()._stop()
        await self.redis.aclose()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/workflows", self._list_workflows),
            web.get("/workflows/{workflow_id}", self._workflow),
            web.get("/dead-letters", self._dead_letters),
            web.get("/metrics", self._prometheus),
        ]

    async def _list_workflows(self, request: web.Request) -> web.Response:
        mode = _mode(request)
        figures = [
            (await self.store.figures(workflow_id, mode=mode)).as_json()
            for workflow_id in await self.store.workflow_ids()
        ]
        return web.json_response({"workflows": figures})

    async def _workflow(self, request: web.Request) -> web.Response:
        workflow_id = request.match_info["workflow_id"]
        figures = await self.store.figures(workflow_id, mode=_mode(request))
        return web.json_response(figures.as_json())

    async def _dead_letters(self, request: web.Request) -> web.Response:
        return web.json_response(await self.store.dead_letters())

    async def _prometheus(self, request: web.Request) -> web.Response:
        figures = [
            await self.store.figures(workflow_id, mode=mode)
            for workflow_id in await self.store.workflow_ids()
            for mode in MODES
        ]
        body, content_type = render_prometheus(figures, await self.store.dead_letters())
        return web.Response(body=body, headers={"Content-Type": content_type})


def _mode(request: web.Request) -> str:
    mode = request.query.get("mode", "LIVE").upper()
    if mode not in MODES:
        raise web.HTTPBadRequest(
            text=f"expected mode to be one of {', '.join(MODES)}, got {mode!r}"
        )
    return mode


def _as_datetime(value: datetime | int) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromtimestamp(value / 1000, UTC)


def _iso(value: datetime | int) -> str:
    return _as_datetime(value).isoformat()
