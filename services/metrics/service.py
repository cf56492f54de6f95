"""The metrics service: consumes the event topics the figures come from."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from confluent_kafka import Message

from signalflow.kafka.service import StreamService

log = logging.getLogger(__name__)


class MetricsService(StreamService):
    """Keeps pending, done, last run, OK and error figures per workflow."""

    name = "metrics"
    group = "metrics"

    def input_topics(self) -> Sequence[str]:
        return [
            self.topics.name(topic)
            for topic in (
                "enrollments",
                "step-results",
                "runs",
                "matcher-status",
                "dead-letters",
            )
        ]

    async def handle(self, batch: Sequence[Message]) -> None:
        log.debug("received %d events", len(batch))
