"""Errors raised by the event contracts, in one hierarchy.

::

    ContractError                  anything wrong with a schema or a payload
    ├── SchemaLoadError            a schema file is missing, malformed or conflicting
    ├── EncodeError                a record does not fit its schema (names the field)
    ├── InputError                 JSON input that is not a valid signal or profile
    └── DecodeError                bytes that are not a message of the expected schema
        ├── BadMarkerError         not Avro single-object encoding (no C3 01 marker)
        ├── UnknownFingerprintError  a writer schema no known version matches
        ├── TruncatedBodyError     the bytes end before the record does
        └── CorruptBodyError       the body does not decode with the writer's schema

None of them is retryable: the same bytes or the same record fail the same way again,
so a service sends what raised a `DecodeError` to dead-letters and moves on.
"""

from __future__ import annotations

from dataclasses import dataclass


class ContractError(Exception):
    """Base of every error about schemas and the payloads they describe."""

    retryable = False


class SchemaLoadError(ContractError):
    """A schema file could not be read, parsed or linked to the types it uses."""


class EncodeError(ContractError):
    """A record does not fit the schema it is encoded with.

    `schema` is the logical schema name (`signal`), `field` the dotted path of the
    offending field when it could be found, else None.
    """

    def __init__(self, message: str, *, schema: str, field: str | None) -> None:
        super().__init__(message)
        self.schema = schema
        self.field = field


@dataclass(frozen=True)
class FieldProblem:
    """One reason JSON input was rejected: the field path and what was wrong."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '(the object)'}: {self.message}"


class InputError(ContractError):
    """JSON input that does not validate; `problems` names every bad field."""

    def __init__(self, kind: str, problems: list[FieldProblem]) -> None:
        listed = "; ".join(str(problem) for problem in problems)
        super().__init__(f"invalid {kind}: {listed}")
        self.kind = kind
        self.problems = problems


class DecodeError(ContractError):
    """Bytes that cannot be decoded as a message of the expected schema.

    `schema` is the logical schema name the caller expected.
    """

    def __init__(self, message: str, *, schema: str) -> None:
        super().__init__(message)
        self.schema = schema


class BadMarkerError(DecodeError):
    """The bytes do not start with the single-object marker `C3 01`."""


class UnknownFingerprintError(DecodeError):
    """The writer's schema fingerprint matches no known version of the schema.

    `fingerprint` holds the 8 fingerprint bytes as they appear in the message.
    """

    def __init__(self, message: str, *, schema: str, fingerprint: bytes) -> None:
        super().__init__(message, schema=schema)
        self.fingerprint = fingerprint


class TruncatedBodyError(DecodeError):
    """The bytes end before the header or the record they announce is complete."""


class CorruptBodyError(DecodeError):
    """The body is not a valid record of the writer's schema (bad lengths, bad
    union or enum indexes, invalid UTF-8, or bytes left over after the record)."""
