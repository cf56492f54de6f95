"""The dispatcher service: consumes enrollments and step results, moves runs on.

Each batch is decoded record by record, the run's next moves are decided by
`RunStepper` on the workflow version the run started on (from the
`DefinitionLog`), and produced: step commands to `actions.<type>`, waits and
retries to the delay tiers, ends to `runs`, failed steps and bad input to
`dead-letters`. The batch's offsets are stored only after every record it produced
is acknowledged, so a crash sends the batch again and nothing is lost; a record
produced twice that way carries the same idempotency key both times.

The process also runs the delay relays of the tiers its settings name (all by
default), unless they run as their own `signalflow run relay` processes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import Message

from services.dispatcher.delays import DelayWriter
from services.dispatcher.envelope import Envelopes
from services.dispatcher.relay import RelayService, wall_clock_ms
from services.dispatcher.retry import RetryPolicy
from services.dispatcher.runs import Effect, RunError, RunStepper
from services.dispatcher.settings import DispatcherSettings
from signalflow.contracts import Codec, DecodeError
from signalflow.definitions import DefinitionLog
from signalflow.kafka.deadletters import DeadLetters
from signalflow.kafka.service import StreamService
from signalflow.service import ServiceState
from signalflow.settings import Settings
from signalflow.workflow import Workflow

log = logging.getLogger(__name__)


class UnknownWorkflowError(LookupError):
    """A record names a workflow version the definition log does not hold, even
    after reading the log to its end. Not retryable: it goes to dead-letters."""


class Dispatcher(StreamService):
    """Turns enrollments into step commands and step results into the next step.

    Args:
        settings: the shared settings (Kafka, topic prefix).
        own: the dispatcher's settings; read from the environment when omitted.
        codec: the Avro codec; loaded from `schemas/` when omitted.
        definitions: a started `DefinitionLog` to share; when omitted the
            dispatcher starts and stops its own.
        clock: epoch milliseconds; the wall clock unless a test says otherwise.

    `stop()` waits for the batch in hand, flushes and commits it, closes the
    consumer, then stops the relays it runs and its definition log.
    """

    name = "dispatcher"
    group = "dispatcher"

    def __init__(
        self,
        settings: Settings,
        *,
        own: DispatcherSettings | None = None,
        codec: Codec | None = None,
        definitions: DefinitionLog | None = None,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        super().__init__(settings)
        self.own = own or DispatcherSettings()
        self.batch_size = self.own.batch_size
        self.codec = codec or Codec.load()
        self._clock = clock
        self._owns_definitions = definitions is None
        self.definitions = definitions or DefinitionLog(settings, codec=self.codec)
        self._stepper = RunStepper(
            self.codec,
            self.topics,
            RetryPolicy(self.own.retry_base_ms, self.own.retry_cap_ms),
            audiences=self.definitions.audiences,
        )
        self._delays = DelayWriter(self.producer, self.topics, Envelopes(self.codec))
        self._dead_letters = DeadLetters(
            self.producer, self.topics, self.codec, service=self.name
        )
        tiers = self.own.relay_tiers()
        self.relays = (
            RelayService(settings, tiers, codec=self.codec, own=self.own)
            if tiers
            else None
        )
        self._relay_watch: asyncio.Task[None] | None = None
        self.counts = {"runs_started": 0, "results": 0, "dead_letters": 0}

    def input_topics(self) -> Sequence[str]:
        return [self.topics.name("enrollments"), self.topics.name("step-results")]

    def consumer_overrides(self) -> dict[str, Any]:
        if self.own.instance_id:
            return {"group_instance_id": f"{self.own.instance_id}.dispatcher"}
        return {}

    # lifecycle

    async def _start(self) -> None:
        if self._owns_definitions:
            await self.definitions.start()
        await super()._start()
        if self.relays is not None:
            await self.relays.start()
            self._relay_watch = asyncio.create_task(self._watch_relays(self.relays))

    async def _stop(self) -> None:
        await super()._stop()
        if self.relays is not None:
            if self._relay_watch is not None:
                self._relay_watch.cancel()
            await self.relays.stop()
        if self._owns_definitions:
            await self.definitions.stop()

    async def _watch_relays(self, relays: RelayService) -> None:
        await relays.wait_stopped()
        if self.state is ServiceState.RUNNING:
            self.fail(RuntimeError("the delay relays stopped; see the log above"))

    def health(self) -> dict[str, Any]:
        report = super().health()
        report.update(self.counts)
        if self.relays is not None:
            report["relays"] = self.relays.health()
        return report

    # one batch

    async def handle(self, batch: Sequence[Message]) -> None:
        """Move every run of the batch on.

        The stream then waits until all it produced is acked; a record the brokers
        refuse fails the batch, whose offsets are not stored, so it comes again.
        """
        enrollments = self.topics.name("enrollments")
        synced = False
        for message in batch:
            now_ms = self._clock()
            try:
                if message.topic() == enrollments:
                    effects, synced = await self._start_run(message, now_ms, synced)
                else:
                    effects, synced = await self._follow_result(message, now_ms, synced)
            except (DecodeError, RunError, UnknownWorkflowError) as error:
                self._dead_letters.send(message, str(error))
                self.counts["dead_letters"] += 1
                continue
            self._produce(message, effects, now_ms)
        self._delays.release()

    async def _start_run(
        self, message: Message, now_ms: int, synced: bool
    ) -> tuple[list[Effect], bool]:
        enrollment = self.codec.decode("enrollment", message.value() or b"")
        workflow, synced = await self._workflow(
            enrollment["workflow_id"], enrollment["workflow_version"], synced
        )
        self.counts["runs_started"] += 1
        log.debug("run %s starts on %s", enrollment["run_id"], workflow.id)
        return self._stepper.start(enrollment, workflow, now_ms=now_ms), synced

    async def _follow_result(
        self, message: Message, now_ms: int, synced: bool
    ) -> tuple[list[Effect], bool]:
        result = self.codec.decode("step_result", message.value() or b"")
        command = self.codec.decode("step_command", result["command"])
        workflow, synced = await self._workflow(
            command["workflow_id"], command["workflow_version"], synced
        )
        self.counts["results"] += 1
        effects = self._stepper.advance(result, command, workflow, now_ms=now_ms)
        return effects, synced

    async def _workflow(
        self, workflow_id: str, version: int, synced: bool
    ) -> tuple[Workflow, bool]:
        """The workflow version a run started on; reads the log to its end once
        per batch when it does not hold it yet (it may just have been saved)."""
        workflow = self.definitions.workflow(workflow_id, version)
        if workflow is None and not synced:
            await self.definitions.sync()
            synced = True
            workflow = self.definitions.workflow(workflow_id, version)
        if workflow is None:
            raise UnknownWorkflowError(
                f"expected a saved version {version!r} of workflow {workflow_id!r}, "
                "found none"
            )
        return workflow, synced

    def _produce(self, source: Message, effects: list[Effect], now_ms: int) -> None:
        for effect in effects:
            if effect.dead_letter is not None:
                # The command of a step that failed for good, for its action topic;
                # partition and offset name the result that ended the step.
                failed = Message(
                    topic=effect.topic,
                    partition=source.partition(),
                    offset=source.offset(),
                    key=effect.key,
                    value=effect.value,
                )
                self._dead_letters.send(
                    failed, effect.dead_letter, history=effect.history
                )
                self.counts["dead_letters"] += 1
            elif effect.due_ms is not None:
                self._delays.send_later(
                    due_ms=effect.due_ms,
                    target_topic=effect.topic,
                    key=effect.key,
                    payload=effect.value,
                    now_ms=now_ms,
                )
            else:
                self._delays.produce(effect.topic, effect.value, key=effect.key)
