"""Avro single-object encoding of every topic's records, with fastavro.

The wire format is the one the Avro specification names *single-object encoding*
and Apache Avro Java's `BinaryMessageEncoder` writes::

    C3 01 | CRC-64-AVRO fingerprint (8 bytes, little-endian) | Avro binary body

The fingerprint is `SchemaNormalization.parsingFingerprint64` of the writer's schema
(over its parsing canonical form), written least significant byte first, exactly as
Java's `SchemaNormalization.parsingFingerprint("CRC-64-AVRO", schema)` returns it.

A `Codec` encodes with the newest version of a schema and decodes bytes written
with any known version by resolving the writer's schema from the fingerprint into
the newest (the reader's) version, so services old and new interoperate.
"""

from __future__ import annotations

from collections.abc import Mapping
from io import BytesIO
from pathlib import Path
from typing import Any, NoReturn

from signalflow.contracts.avro_calls import Reader, compile_reader, compile_writer
from signalflow.contracts.errors import (
    BadMarkerError,
    ContractError,
    CorruptBodyError,
    DecodeError,
    EncodeError,
    TruncatedBodyError,
    UnknownFingerprintError,
)
from signalflow.contracts.misfit import find_misfit
from signalflow.contracts.registry import ResolvedSchema, SchemaRegistry

MARKER = b"\xc3\x01"
HEADER_SIZE = len(MARKER) + 8

Record = dict[str, Any]


class _Route:
    """Everything precompiled for one logical schema under one set of pins: the
    header and writer it encodes with, and a reader per writer fingerprint seen."""

    __slots__ = ("name", "writer", "header", "write", "readers")

    def __init__(self, name: str, writer: ResolvedSchema) -> None:
        self.name = name
        self.writer = writer
        self.header = MARKER + writer.fingerprint
        self.write = compile_writer(writer.parsed)
        self.readers: dict[bytes, Reader] = {
            writer.fingerprint: compile_reader(writer.parsed)
        }


class Codec:
    """Encodes and decodes the records of every schema in `schemas/`.

    `Codec.load()` reads the schema files once; encoding and decoding then only
    look up precompiled schemas. `pins` maps schema names to the version this codec
    writes and reads into (the newest by default); every known version is still
    decodable. A codec holds no per-call state and is safe to share between
    threads.
    """

    def __init__(
        self, registry: SchemaRegistry, *, pins: Mapping[str, int] | None = None
    ) -> None:
        self.registry = registry
        self.pins: dict[str, int] = dict(pins or {})
        self._routes = {
            name: _Route(name, registry.preferred(name, self.pins))
            for name in registry.names()
        }

    @classmethod
    def load(
        cls, schema_dir: Path | None = None, *, pins: Mapping[str, int] | None = None
    ) -> Codec:
        """Load every schema under `schema_dir` (default: the `schemas/` package).

        Raises SchemaLoadError for a schema that cannot be read or linked.
        """
        return cls(SchemaRegistry.load(schema_dir), pins=pins)

    def pinned(self, pins: Mapping[str, int]) -> Codec:
        """A codec over the same schemas that writes and reads the pinned versions."""
        return Codec(self.registry, pins={**self.pins, **pins})

    def writer_schema(self, name: str) -> ResolvedSchema:
        """The schema `encode(name, ...)` writes with."""
        return self._route(name).writer

    def encode(self, name: str, record: Mapping[str, Any]) -> bytes:
        """Encode `record` as a single-object message of schema `name`.

        Timestamps may be given as aware datetimes or as epoch milliseconds. Raises
        EncodeError naming the offending field when the record does not fit.
        """
        route = self._routes.get(name) or self._unknown(name)
        buffer = bytearray(route.header)
        try:
            route.write(buffer, record)
        except Exception as exc:  # fastavro raises whatever the bad value raises
            raise _explain_encode_failure(route, record, exc) from exc
        return bytes(buffer)

    def decode(self, name: str, data: bytes) -> Record:
        """Decode a single-object message into a record of schema `name`.

        The writer's schema is found by the message's fingerprint among every known
        version; the record is resolved into this codec's version (the newest
        unless pinned). Raises BadMarkerError, UnknownFingerprintError,
        TruncatedBodyError or CorruptBodyError, all DecodeErrors.
        """
        route = self._routes.get(name) or self._unknown(name)
        if not data.startswith(MARKER):
            raise BadMarkerError(
                f"expected a {name!r} message starting with C3 01, got {data[:2]!r}",
                schema=name,
            )
        fingerprint = data[2:HEADER_SIZE]
        read = route.readers.get(fingerprint) or self._reader(route, fingerprint)
        buffer = BytesIO(data)
        buffer.seek(HEADER_SIZE)
        try:
            record: Record = read(buffer)
        except Exception as exc:  # fastavro raises whatever the bad bytes cause
            raise _explain_decode_failure(name, data, buffer, exc) from exc
        if buffer.tell() != len(data):
            raise CorruptBodyError(
                f"{name!r} message has {len(data) - buffer.tell()} bytes after its"
                " record",
                schema=name,
            )
        return record

    def _route(self, name: str) -> _Route:
        return self._routes.get(name) or self._unknown(name)

    def _unknown(self, name: str) -> NoReturn:
        raise ContractError(
            f"expected one of the schemas {sorted(self._routes)!r}, got {name!r}"
        )

    def _reader(self, route: _Route, fingerprint: bytes) -> Reader:
        """Find, compile and cache how to read another writer version."""
        if len(fingerprint) < 8:
            raise TruncatedBodyError(
                f"{route.name!r} message ends inside its 10-byte header",
                schema=route.name,
            )
        writer = self.registry.by_fingerprint(route.name, fingerprint)
        if writer is None:
            raise UnknownFingerprintError(
                f"fingerprint {fingerprint.hex()!r} is no known version of schema"
                f" {route.name!r}",
                schema=route.name,
                fingerprint=fingerprint,
            )
        read = compile_reader(writer.parsed, route.writer.parsed)
        # A dict assignment is atomic: threads racing here compute the same value.
        route.readers[fingerprint] = read
        return read


def _explain_decode_failure(
    name: str, data: bytes, buffer: BytesIO, cause: Exception
) -> DecodeError:
    """Tell a body that ended too soon from one that makes no sense."""
    # The reader stops wherever the bytes ran out; having consumed them all, or
    # having asked for more than there were, the record was cut short.
    if isinstance(cause, EOFError) or buffer.tell() >= len(data):
        return TruncatedBodyError(
            f"{name!r} message ends before its record does ({len(data)} bytes)",
            schema=name,
        )
    return CorruptBodyError(
        f"{name!r} message body does not decode: {cause!r}", schema=name
    )


def _explain_encode_failure(
    route: _Route, record: Mapping[str, Any], cause: Exception
) -> EncodeError:
    """Name the field that made fastavro fail, by walking the record."""
    misfit = find_misfit(route.writer.parsed, record)
    if misfit is None:
        detail = f"{cause!r}"
        return EncodeError(
            f"record does not fit schema {route.name!r}: {detail}",
            schema=route.name,
            field=None,
        )
    return EncodeError(
        f"record does not fit schema {route.name!r} at {misfit}",
        schema=route.name,
        field=misfit.path,
    )
