"""Signals and profiles over HTTP, for integrators without a Kafka client.

Each item of a JSON batch is validated with the same rules as the Avro schemas
(`signalflow.contracts.inputs`), encoded, and published with the key the topic
expects (account key for signals, the profile's own key for profiles). Good items
are published even when others are rejected; the answer lists each rejected item by
its index, with the field path and the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from services.api.payloads import IngestReport, Rejection
from services.api.publisher import OutgoingRecord, Publisher
from signalflow.contracts import Codec, EncodeError
from signalflow.contracts.errors import InputError
from signalflow.contracts.inputs import validate_profile, validate_signal
from signalflow.settings import Settings
from signalflow.topics import Topics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Kind:
    topic: str
    schema: str
    validate: Callable[[Any], dict[str, Any]]
    key_field: str


class Ingestor:
    """Validates and publishes batches of signals and profiles."""

    def __init__(self, settings: Settings, publisher: Publisher, codec: Codec) -> None:
        topics = Topics(settings)
        self._publisher = publisher
        self._codec = codec
        self._signals = _Kind(
            topics.name("signals"), "signal", validate_signal, "account_key"
        )
        self._profiles = _Kind(
            topics.name("profiles"), "profile", validate_profile, "key"
        )

    async def signals(self, items: Sequence[Any]) -> IngestReport:
        """Publish the valid signals of `items`; report the rejected ones.

        Raises Unavailable when Kafka does not acknowledge the valid ones.
        """
        return await self._ingest(self._signals, items)

    async def profiles(self, items: Sequence[Any]) -> IngestReport:
        """Publish the valid profiles of `items`; report the rejected ones.

        Raises Unavailable when Kafka does not acknowledge the valid ones.
        """
        return await self._ingest(self._profiles, items)

    async def _ingest(self, kind: _Kind, items: Sequence[Any]) -> IngestReport:
        records: list[OutgoingRecord] = []
        rejected: list[Rejection] = []
        for index, item in enumerate(items):
            try:
                records.append(self._encode(kind, item))
            except InputError as error:
                rejected += [
                    Rejection(index=index, path=problem.path, reason=problem.message)
                    for problem in error.problems
                ]
            except EncodeError as error:
                rejected.append(
                    Rejection(index=index, path=error.field or "", reason=str(error))
                )
        await self._publisher.publish(records)
        log.info(
            "ingested %d %s(s), rejected %d item(s)",
            len(records),
            kind.schema,
            len({rejection.index for rejection in rejected}),
        )
        return IngestReport(accepted=len(records), rejected=rejected)

    def _encode(self, kind: _Kind, item: Any) -> OutgoingRecord:
        record = kind.validate(item)
        value = self._codec.encode(kind.schema, record)
        return OutgoingRecord(kind.topic, value, key=record[kind.key_field].encode())
