"""The action service of one action type: consumes its step commands."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from confluent_kafka import Message

from signalflow.kafka.service import StreamService
from signalflow.settings import Settings
from signalflow.topics import ActionType

log = logging.getLogger(__name__)


class ActionService(StreamService):
    """Performs the side effect of each step command of one action type."""

    def __init__(self, settings: Settings, action: ActionType) -> None:
        super().__init__(settings)
        self.action = action
        self.name = f"action-{action}"
        self.group = f"actions.{action}"

    def input_topics(self) -> Sequence[str]:
        return [self.topics.action(self.action)]

    async def handle(self, batch: Sequence[Message]) -> None:
        log.debug("received %d commands", len(batch))
