"""Errors of the definition log, in one hierarchy.

::

    DefinitionLogError          the log cannot do what was asked
    ├── LogNotRunningError      used before `start()` or after `stop()` (not retryable)
    ├── UnknownDefinitionError  deleting an id that has no live definition
    ├── DefinitionKindError     saving an id that belongs to the other kind
    ├── VersionConflictError    the latest version is not the one the writer expected
    └── SaveTimeoutError        the write was not acknowledged or not read back in
                                time (retryable: saving again is safe)
"""

from __future__ import annotations


class DefinitionLogError(Exception):
    """Base of every error the definition log raises."""

    retryable = False


class LogNotRunningError(DefinitionLogError):
    """The log was used before `start()` finished or after `stop()`."""


class UnknownDefinitionError(DefinitionLogError):
    """No live (saved and not deleted) definition has this id."""

    def __init__(self, definition_id: str) -> None:
        super().__init__(
            f"expected a saved definition, got unknown id {definition_id!r}"
        )
        self.definition_id = definition_id


class DefinitionKindError(DefinitionLogError):
    """The id is already used by a definition of the other kind."""


class VersionConflictError(DefinitionLogError):
    """Another writer saved a version since the caller read the definition.

    `found` is the latest version now (0: none), `expected` what the caller had.
    """

    def __init__(self, definition_id: str, *, expected: int, found: int) -> None:
        super().__init__(
            f"expected {definition_id!r} to be at version {expected}, it is at {found}"
        )
        self.definition_id = definition_id
        self.expected = expected
        self.found = found


class SaveTimeoutError(DefinitionLogError):
    """The write was not acknowledged, or not read back, within the time allowed.

    Retryable: a later save assigns the next free version, so nothing is lost or
    duplicated by trying again.
    """

    retryable = True
