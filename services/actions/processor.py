"""From one consumed record to one acknowledged step result.

`CommandProcessor` is the handler the `CommandRunner` calls for every record:

1. decode the `step_command`; what does not decode, or belongs to another action
   type, goes to `dead-letters` and is done;
2. ask the idempotency store: a step already performed answers with its recorded
   result, without acting again; otherwise this replica claims it;
3. validate the parameters, build the run's template context and let the action
   perform the step; every failure becomes an ERROR outcome, retryable or not as
   its class says (the runner does not retry: the dispatcher re-sends through the
   delay topics);
4. publish the `step_result` (with the encoded command echoed) and wait until the
   brokers acknowledged it, so the runner may commit past the command; at the
   same time record a success under the idempotency key, or drop the claim after
   a failure. The claim stays until the record lands, so a duplicate arriving in
   between waits for the record rather than acting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from confluent_kafka import Message
from redis.exceptions import RedisError

from services.actions.action import Action, Step
from services.actions.command import Outcome, StepCommand, result_record
from services.actions.delivery import AckedProducer
from services.actions.errors import ActionError, PermanentError, RetryableError
from services.actions.idempotency import (
    Claim,
    ClaimBusyError,
    IdempotencyStore,
    Recorded,
)
from signalflow.contracts import Codec, DecodeError
from signalflow.kafka.deadletters import DeadLetters
from signalflow.topics import Topics
from signalflow.workflow.variables import RunContext

log = logging.getLogger(__name__)

#: Maps a workflow id and version to its step names and ids, for templates that
#: read `${<step name>: <output>}`.
StepNames = Callable[[str, int], Mapping[str, str]]


def no_step_names(workflow_id: str, version: int) -> Mapping[str, str]:
    """A `StepNames` for when no definitions are at hand: steps are read by id."""
    return {}


class CommandProcessor:
    """Performs one step command of `action_type` and publishes its result.

    Args:
        action: the action performing this service's steps.
        codec: decodes commands and encodes results.
        producer: publishes results (and dead letters).
        topics: resolves the result and dead-letter topics.
        dead_letters: where undecodable and misrouted commands go.
        idempotency: the store of performed steps; None turns the check off
            (for measurements only: a redelivery then acts again).
        claim_wait_s: how long to wait for another replica performing the step.
        step_names: step names of a workflow version.
    """

    def __init__(
        self,
        action: Action[Any],
        *,
        codec: Codec,
        producer: AckedProducer,
        topics: Topics,
        dead_letters: DeadLetters,
        idempotency: IdempotencyStore | None,
        claim_wait_s: float,
        step_names: StepNames = no_step_names,
    ) -> None:
        self._action = action
        self._action_type = action.action_type
        self._codec = codec
        self._producer = producer
        self._results_topic = topics.name("step-results")
        self._dead_letters = dead_letters
        self._idempotency = idempotency
        self._claim_wait_s = claim_wait_s
        self._step_names = step_names
        self.performed = 0
        self.replayed = 0

    async def __call__(self, message: Message) -> None:
        """Handle one record completely; returns once its result is acknowledged."""
        command = await self._decode(message)
        if command is None:
            return
        claim, outcome = await self._outcome(command)
        if claim is None:
            await self._publish(command, outcome)
            return
        # The claim outlives the publish until the record lands, so recording and
        # publishing may overlap: a duplicate arriving meanwhile waits on the claim.
        await asyncio.gather(
            self._settle(command, claim, outcome), self._publish(command, outcome)
        )

    async def _decode(self, message: Message) -> StepCommand | None:
        data = message.value() or b""
        try:
            record = self._codec.decode("step_command", data)
        except DecodeError as error:
            await self._dead_letter(message, f"undecodable step command: {error}")
            return None
        if record.get("action_type") != self._action_type:
            await self._dead_letter(
                message,
                f"expected a {str(self._action_type)!r} command on this topic, got "
                f"{record.get('action_type')!r}",
            )
            return None
        return StepCommand(record, data)

    async def _dead_letter(self, message: Message, reason: str) -> None:
        self._dead_letters.send(message, reason)
        await asyncio.to_thread(self._producer.flush, 30.0)

    async def _outcome(self, command: StepCommand) -> tuple[Claim | None, Outcome]:
        """Perform the command under a claim, or find its recorded result.

        Returns the claim still held (to settle with `_settle`) and the outcome.
        """
        if self._idempotency is None:
            return None, await self._perform(command)
        try:
            held = await self._idempotency.acquire(
                command.idempotency_key, wait_s=self._claim_wait_s
            )
        except ClaimBusyError as error:
            busy = RetryableError(str(error), retry_after_s=error.retry_after_s)
            return None, Outcome.failed(busy)
        except RedisError as error:
            return None, Outcome.failed(_redis_unavailable(error))
        if isinstance(held, Recorded):
            self.replayed += 1
            log.info(
                "step %s of run %s was already performed; replaying its result",
                command.step_id,
                command.run_id,
            )
            return None, Outcome(held.status, held.outputs)  # type: ignore[arg-type]
        try:
            outcome = await self._perform(command)
        except BaseException:
            # Cancelled while acting: let a redelivery act at once.
            await asyncio.shield(_quietly(self._idempotency.release(held)))
            raise
        return held, outcome

    async def _settle(
        self, command: StepCommand, claim: Claim, outcome: Outcome
    ) -> None:
        """Record a success under the claim's key, or drop the claim after a failure."""
        store = self._idempotency
        if store is None:
            raise RuntimeError("a claim without an idempotency store")
        try:
            if outcome.status == "ERROR":
                await store.release(claim)
            else:
                await store.record(
                    claim, Recorded(outcome.status, dict(outcome.outputs))
                )
        except RedisError as error:
            log.warning(
                "step %s of run %s: could not update its idempotency record: %s",
                command.step_id,
                command.run_id,
                error,
            )

    async def _perform(self, command: StepCommand) -> Outcome:
        try:
            params = command.params(self._action_type)
            context = RunContext.from_enrollment(
                command.enrollment,
                outputs=command.outputs,
                step_names=self._step_names(
                    command.workflow_id, command.workflow_version
                ),
            )
            outcome = await self._action.perform(Step(command, params, context))
        except ActionError as error:
            outcome = Outcome.failed(error)
        except RedisError as error:
            outcome = Outcome.failed(_redis_unavailable(error))
        except Exception as error:  # a bug must fail the step, not the service
            log.exception(
                "step %s of run %s failed unexpectedly", command.step_id, command.run_id
            )
            outcome = Outcome.failed(
                PermanentError(
                    f"the {self._action_type} action failed unexpectedly: "
                    f"{type(error).__name__}: {error}"
                )
            )
        self.performed += 1
        _log_outcome(command, outcome)
        return outcome

    async def _publish(self, command: StepCommand, outcome: Outcome) -> None:
        record = result_record(command, outcome)
        await self._producer.send(
            self._results_topic,
            self._codec.encode("step_result", record),
            key=command.run_id,
        )


def _redis_unavailable(error: RedisError) -> RetryableError:
    return RetryableError(f"the shared Redis is unavailable: {type(error).__name__}")


async def _quietly(release: Awaitable[object]) -> None:
    try:
        await release
    except RedisError as error:
        log.warning("could not drop an idempotency claim: %s", error)


def _log_outcome(command: StepCommand, outcome: Outcome) -> None:
    if outcome.status == "ERROR":
        log.warning(
            "step %s of run %s attempt %d failed (%s): %s",
            command.step_id,
            command.run_id,
            command.attempt,
            "retryable" if outcome.retryable else "permanent",
            outcome.error,
        )
        return
    log.info(
        "step %s of run %s attempt %d: %s (%s)",
        command.step_id,
        command.run_id,
        command.attempt,
        outcome.status,
        command.mode,
    )
