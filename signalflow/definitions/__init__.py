"""Audience and workflow definitions, every version, stored in Kafka.

`DefinitionLog` is the one way services read and write definitions: the api saves
them, the matcher and the dispatcher follow them. See `signalflow.definitions.log`.
"""

from signalflow.definitions.errors import (
    DefinitionKindError,
    DefinitionLogError,
    LogNotRunningError,
    SaveTimeoutError,
    UnknownDefinitionError,
    VersionConflictError,
)
from signalflow.definitions.log import ChangeCallback, DefinitionLog
from signalflow.definitions.records import (
    Definition,
    DefinitionKind,
    StoredDefinition,
    definition_key,
    kind_of,
)

__all__ = [
    "ChangeCallback",
    "Definition",
    "DefinitionKind",
    "DefinitionKindError",
    "DefinitionLog",
    "DefinitionLogError",
    "LogNotRunningError",
    "SaveTimeoutError",
    "StoredDefinition",
    "UnknownDefinitionError",
    "VersionConflictError",
    "definition_key",
    "kind_of",
]
