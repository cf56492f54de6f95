"""The dispatcher service: consumes enrollments and step results."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from confluent_kafka import Message

from signalflow.kafka.service import StreamService

log = logging.getLogger(__name__)


class Dispatcher(StreamService):
    """Turns enrollments into step commands and step results into the next step."""

    name = "dispatcher"
    group = "dispatcher"

    def input_topics(self) -> Sequence[str]:
        return [self.topics.name("enrollments"), self.topics.name("step-results")]

    async def handle(self, batch: Sequence[Message]) -> None:
        log.debug("received %d records", len(batch))
