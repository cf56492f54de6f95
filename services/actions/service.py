"""The action service of one action type: `signalflow run action --type <type>`.

One consumer group per action type (`<prefix>signalflow.actions.<type>`) reads the
type's `actions.<type>` topic. Each command runs through the `CommandProcessor`
(idempotency check, the action, the step result) inside a `CommandRunner` that
runs commands concurrently and commits only finished prefixes of each partition.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.asyncio import Redis

from services.actions.action import Action
from services.actions.delivery import AckedProducer
from services.actions.idempotency import IdempotencyStore
from services.actions.kinds import build_action
from services.actions.processor import CommandProcessor
from services.actions.resources import Resources
from services.actions.runner import CommandRunner
from services.actions.settings import ActionSettings
from signalflow.contracts import Codec
from signalflow.definitions import DefinitionLog
from signalflow.kafka.clients import group_id, make_consumer, make_producer
from signalflow.kafka.deadletters import DeadLetters
from signalflow.service import Service
from signalflow.settings import Settings
from signalflow.topics import ActionType, Topics

log = logging.getLogger(__name__)


class ActionService(Service):
    """Performs the side effect of each step command of one action type.

    Args:
        settings: the shared settings (Kafka, Redis, topic prefix).
        action_type: which action this service performs.
        own: this service's settings; read from the environment when omitted.
        resources: connectors and settings the actions use; built from the
            environment when omitted.
        idempotency: False turns the Redis check off. Only measurements do that:
            without it a redelivered command acts again.

    `stop()` stops consuming, waits up to `revoke_drain_s` for running commands
    (the rest are handed back uncommitted), commits what finished, waits for the
    produced results to be acknowledged and closes the connectors.
    """

    def __init__(
        self,
        settings: Settings,
        action_type: ActionType,
        *,
        own: ActionSettings | None = None,
        resources: Resources | None = None,
        idempotency: bool = True,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.action_type = ActionType(action_type)
        self.own = own or ActionSettings()
        self.name = f"action-{self.action_type}"
        self.topics = Topics(settings)
        self._resources = resources
        self._use_idempotency = idempotency
        self._redis: Redis | None = None
        self._producer: AckedProducer | None = None
        self._definitions: DefinitionLog | None = None
        self._action: Action[Any] | None = None
        self._runner: CommandRunner | None = None
        self._processor: CommandProcessor | None = None
        self._task: asyncio.Task[None] | None = None

    async def _start(self) -> None:
        codec = Codec.load()
        self._redis = Redis.from_url(self.settings.redis.url)
        resources = self._resources or Resources.from_environment(
            self.settings, redis=self._redis, own=self.own
        )
        self._resources = resources
        self._definitions = DefinitionLog(self.settings, codec=codec)
        await self._definitions.start()
        self._producer = AckedProducer(make_producer(self.settings))
        self._producer.start()
        self._action = build_action(self.action_type, resources)
        self._processor = CommandProcessor(
            self._action,
            codec=codec,
            producer=self._producer,
            topics=self.topics,
            dead_letters=DeadLetters(
                self._producer.producer, self.topics, codec, service=self.name
            ),
            idempotency=self._idempotency_store(self._redis, resources),
            claim_wait_s=self.own.claim_wait_s,
            step_names=self._step_names,
        )
        consumer = make_consumer(
            self.settings, group_id(self.settings, f"actions.{self.action_type}")
        )
        self._runner = CommandRunner(
            consumer,
            [self.topics.action(self.action_type)],
            self._processor,
            max_in_flight=self.own.max_in_flight,
            partition_concurrency=self.own.partition_concurrency,
            poll_timeout_s=self.own.poll_timeout_s,
            revoke_drain_s=self.own.revoke_drain_s,
        )
        self._task = asyncio.create_task(self._run(self._runner), name=self.name)

    def _idempotency_store(
        self, redis: Redis, resources: Resources
    ) -> IdempotencyStore | None:
        if not self._use_idempotency:
            log.warning("%s runs without idempotency checks", self.name)
            return None
        return IdempotencyStore(
            redis,
            namespace=resources.redis_key("steps"),
            result_ttl_s=self.own.result_ttl_s,
            claim_ttl_s=self.own.claim_ttl_s,
        )

    def _step_names(self, workflow_id: str, version: int) -> dict[str, str]:
        if self._definitions is None:
            return {}
        workflow = self._definitions.workflow(workflow_id, version)
        return workflow.step_names() if workflow is not None else {}

    async def _run(self, runner: CommandRunner) -> None:
        try:
            await runner.run()
        except Exception as error:  # the loop died: report it, do not hide it
            self.fail(error)

    async def _stop(self) -> None:
        if self._runner is not None:
            self._runner.stop()
        if self._task is not None:
            await self._task
        if self._producer is not None:
            await self._producer.close()
        if self._action is not None:
            await self._action.aclose()
        if self._resources is not None:
            await self._resources.aclose()
        if self._definitions is not None:
            await self._definitions.stop()
        if self._redis is not None:
            await self._redis.aclose()

    def health(self) -> dict[str, Any]:
        report = super().health()
        if self._runner is not None:
            report["in_flight"] = self._runner.in_flight
            report["records_done"] = self._runner.records_done
            report["partitions"] = sorted(
                f"{topic}[{partition}]" for topic, partition in self._runner.assignment
            )
            report["paused"] = sorted(
                f"{topic}[{partition}]" for topic, partition in self._runner.paused
            )
            report["pauses"] = self._runner.pauses
        if self._processor is not None:
            report["performed"] = self._processor.performed
            report["replayed"] = self._processor.replayed
        return report
