"""Publishing JSON-lines files of signals or profiles to their Kafka topics.

Each line is one JSON object. Valid lines are encoded with the codec and produced
with the right key; invalid ones are reported with their line number and field path
and skipped, so one bad line never holds back the good ones.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from signalflow.contracts.errors import FieldProblem, InputError
from signalflow.contracts.inputs import validate_profile, validate_signal
from signalflow.contracts.serde import Codec

logger = logging.getLogger(__name__)


class PublishKind(StrEnum):
    """What a file holds; names the topic, the schema and the key field."""

    SIGNALS = "signals"
    PROFILES = "profiles"

    @property
    def schema(self) -> str:
        return "signal" if self is PublishKind.SIGNALS else "profile"

    @property
    def key_field(self) -> str:
        return "account_key" if self is PublishKind.SIGNALS else "key"

    @property
    def validate(self) -> Callable[[Any], dict[str, Any]]:
        return validate_signal if self is PublishKind.SIGNALS else validate_profile


@dataclass(frozen=True)
class LineProblem:
    """Why one line of the file was not published."""

    line_number: int
    problems: list[FieldProblem]


@dataclass
class PublishReport:
    """What publishing a file did: lines published, rejected, and failed in Kafka."""

    topic: str
    published: int = 0
    rejected: list[LineProblem] = field(default_factory=list)
    delivery_failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every line was valid and every message was delivered."""
        return not self.rejected and not self.delivery_failures


def parse_line(kind: PublishKind, line: str) -> dict[str, Any]:
    """Decode and validate one JSON line; raise InputError naming what is wrong."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        problem = FieldProblem("", f"not JSON: {exc.msg} at column {exc.colno}")
        raise InputError(kind.schema, [problem]) from None
    return kind.validate(data)


def publish_lines(
    lines: Iterable[str],
    *,
    kind: PublishKind,
    topic: str,
    producer: Producer,
    codec: Codec,
    flush_timeout_s: float = 30.0,
) -> PublishReport:
    """Validate and produce every line; wait until Kafka acknowledged them all.

    Blank lines are skipped. Returns a report of what was published, what was
    rejected (with line numbers and field paths) and what Kafka failed to take.
    """
    report = PublishReport(topic)

    def delivered(error: KafkaError | None, message: Message) -> None:
        if error is None:
            report.published += 1
        else:
            report.delivery_failures.append(str(error))

    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = parse_line(kind, line)
        except InputError as exc:
            report.rejected.append(LineProblem(number, exc.problems))
            continue
        value = codec.encode(kind.schema, record)
        key = record[kind.key_field].encode()
        _produce(producer, topic, value, key, delivered)

    unsent = producer.flush(flush_timeout_s)
    if unsent:
        report.delivery_failures.append(
            f"{unsent} messages still unacknowledged after {flush_timeout_s}s"
        )
    logger.info(
        "published %d %s to %s, rejected %d lines",
        report.published,
        kind,
        topic,
        len(report.rejected),
    )
    return report


def _produce(
    producer: Producer,
    topic: str,
    value: bytes,
    key: bytes,
    on_delivery: Callable[[KafkaError | None, Message], None],
) -> None:
    """Produce one message, serving delivery reports while the queue is full."""
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
            return
        except BufferError:
            producer.poll(0.5)
