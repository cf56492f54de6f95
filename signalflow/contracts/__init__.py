"""The event contracts: Avro schemas, single-object encoding, JSON input validation.

`Codec.load()` is the entry point for services: `codec.encode("signal", record)` and
`codec.decode("signal", data)`. Errors are in `signalflow.contracts.errors`; JSON
input is validated by `signalflow.contracts.inputs` (`validate_signal`,
`validate_profile`).
"""

from signalflow.contracts.errors import (
    BadMarkerError,
    ContractError,
    CorruptBodyError,
    DecodeError,
    EncodeError,
    FieldProblem,
    InputError,
    SchemaLoadError,
    TruncatedBodyError,
    UnknownFingerprintError,
)
from signalflow.contracts.registry import ResolvedSchema, SchemaRegistry
from signalflow.contracts.serde import MARKER, Codec

__all__ = [
    "MARKER",
    "BadMarkerError",
    "Codec",
    "ContractError",
    "CorruptBodyError",
    "DecodeError",
    "EncodeError",
    "FieldProblem",
    "InputError",
    "ResolvedSchema",
    "SchemaLoadError",
    "SchemaRegistry",
    "TruncatedBodyError",
    "UnknownFingerprintError",
]
