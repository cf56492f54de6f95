"""One saved version of a definition, and how it travels on the `workflows` topic.

The record key is `<id>@<version>`, so compaction keeps every version of every
definition; the value is the `definition` Avro record whose `body` is the JSON of
the validated model (`Audience` or `Workflow`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from signalflow.workflow import Audience, Workflow

log = logging.getLogger(__name__)

Definition = Audience | Workflow
"""What the log stores: a validated audience or workflow."""


class DefinitionKind(StrEnum):
    """Which model a definition's body holds (the `definition` schema's enum)."""

    AUDIENCE = "AUDIENCE"
    WORKFLOW = "WORKFLOW"


@dataclass(frozen=True)
class StoredDefinition:
    """One version of a definition as the log holds it.

    `model` is the parsed body, or None when the body no longer validates against
    the current model (logged at ERROR when read). A deletion is a version of its
    own with `deleted=True`; its body repeats the version it deleted.
    `offset` is where the record sits in the `workflows` topic.
    """

    id: str
    kind: DefinitionKind
    version: int
    saved_at: datetime
    deleted: bool
    body: str
    offset: int
    model: Definition | None

    @property
    def key(self) -> bytes:
        return definition_key(self.id, self.version)


def definition_key(definition_id: str, version: int) -> bytes:
    """Return the Kafka key of one version: `<id>@<version>`, UTF-8."""
    return f"{definition_id}@{version}".encode()


def kind_of(definition: Definition) -> DefinitionKind:
    """Return the kind of a model; raises TypeError for anything else."""
    if isinstance(definition, Workflow):
        return DefinitionKind.WORKFLOW
    if isinstance(definition, Audience):
        return DefinitionKind.AUDIENCE
    raise TypeError(f"expected an Audience or a Workflow, got {definition!r}")


def with_version(definition: Definition, version: int) -> Definition:
    """Return the model as it is saved as `version`: its `version` field set."""
    return definition.model_copy(update={"version": version})


def to_record(
    definition: Definition, *, version: int, deleted: bool, saved_at: datetime
) -> dict[str, Any]:
    """Return the `definition` Avro record of one version of `definition`."""
    return {
        "id": definition.id,
        "kind": kind_of(definition).value,
        "version": version,
        "saved_at": saved_at,
        "deleted": deleted,
        "body": with_version(definition, version).model_dump_json(by_alias=True),
    }


def from_record(record: dict[str, Any], *, offset: int) -> StoredDefinition:
    """Build a `StoredDefinition` from a decoded `definition` record.

    A body that fails validation gives `model=None`, logged at ERROR, instead of
    raising: one unreadable version must not hide the others.
    """
    kind = DefinitionKind(record["kind"])
    return StoredDefinition(
        id=record["id"],
        kind=kind,
        version=record["version"],
        saved_at=_aware(record["saved_at"]),
        deleted=record["deleted"],
        body=record["body"],
        offset=offset,
        model=_parse_body(kind, record),
    )


def _parse_body(kind: DefinitionKind, record: dict[str, Any]) -> Definition | None:
    model_class: type[Audience] | type[Workflow] = (
        Workflow if kind is DefinitionKind.WORKFLOW else Audience
    )
    try:
        return model_class.model_validate_json(record["body"])
    except ValidationError as error:
        log.error(
            "definition %s@%s does not validate and is ignored: %s",
            record["id"],
            record["version"],
            error,
        )
        return None


def _aware(moment: datetime | int) -> datetime:
    if isinstance(moment, int):
        return datetime.fromtimestamp(moment / 1000, tz=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
