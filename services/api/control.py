"""Commands for the matcher on the `control` topic.

A command must reach every matcher partition, and a matcher partition owns the
control partition of the same number, so the api writes one copy of each command to
every partition of `control`, with `partition_count` saying how many copies exist
(answers, such as a preview's, can then be counted complete).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from confluent_kafka.admin import AdminClient

from services.api.problems import Unavailable
from services.api.publisher import OutgoingRecord, Publisher
from signalflow.contracts import Codec
from signalflow.settings import Settings
from signalflow.topics import Topics

log = logging.getLogger(__name__)


class ControlKind(StrEnum):
    ACTIVATE = "ACTIVATE"
    PAUSE = "PAUSE"
    PREVIEW = "PREVIEW"
    TEST_RUN = "TEST_RUN"
    DRY_RUN = "DRY_RUN"


class ExecutionTiming(StrEnum):
    ALL_CURRENT = "ALL_CURRENT"
    FUTURE_ONLY = "FUTURE_ONLY"


@dataclass(frozen=True)
class ControlCommand:
    """One command, as every partition of `control` receives it."""

    command_id: str
    kind: ControlKind
    workflow_id: str
    workflow_version: int
    issued_at: datetime
    execution_timing: ExecutionTiming | None = None
    limit: int | None = None

    def record(self, partition_count: int) -> dict[str, Any]:
        """Return the `control` Avro record of this command."""
        return {
            "command_id": self.command_id,
            "kind": self.kind.value,
            "workflow_id": self.workflow_id,
            "workflow_version": self.workflow_version,
            "execution_timing": (
                self.execution_timing.value if self.execution_timing else None
            ),
            "limit": self.limit,
            "issued_at": self.issued_at,
            "partition_count": partition_count,
        }


def new_command(
    kind: ControlKind,
    *,
    workflow_id: str,
    workflow_version: int,
    execution_timing: ExecutionTiming | None = None,
    limit: int | None = None,
) -> ControlCommand:
    """Return a command with a fresh id, issued now."""
    return ControlCommand(
        command_id=f"cmd_{uuid.uuid4().hex}",
        kind=kind,
        workflow_id=workflow_id,
        workflow_version=workflow_version,
        issued_at=datetime.now(UTC),
        execution_timing=execution_timing,
        limit=limit,
    )


class ControlChannel:
    """Writes commands to every partition of the `control` topic.

    `partition_count` is read from the cluster once, by `start()`.
    """

    def __init__(self, settings: Settings, publisher: Publisher, codec: Codec) -> None:
        self._settings = settings
        self._publisher = publisher
        self._codec = codec
        self._topic = Topics(settings).name("control")
        self.partition_count = 0

    def start(self) -> None:
        """Read how many partitions `control` has.

        Blocks (call it from a thread); raises Unavailable when the topic is
        missing or the cluster does not answer.
        """
        admin = AdminClient(self._settings.kafka.librdkafka_config())
        metadata = admin.list_topics(self._topic, timeout=10.0)
        topic = metadata.topics.get(self._topic)
        if topic is None or topic.error is not None or not topic.partitions:
            raise Unavailable(
                f"expected the topic {self._topic!r} to exist with partitions,"
                f" got {topic.error if topic else 'nothing'!r}"
            )
        self.partition_count = len(topic.partitions)

    async def send(self, command: ControlCommand) -> None:
        """Write `command` to every partition; return once all are acknowledged.

        Raises Unavailable when Kafka does not acknowledge every copy.
        """
        value = self._codec.encode("control", command.record(self.partition_count))
        key = command.workflow_id.encode()
        await self._publisher.publish(
            [
                OutgoingRecord(self._topic, value, key=key, partition=partition)
                for partition in range(self.partition_count)
            ]
        )
        log.info(
            "sent %s %s for %s@%d to %d partitions",
            command.kind.value,
            command.command_id,
            command.workflow_id,
            command.workflow_version,
            self.partition_count,
        )
