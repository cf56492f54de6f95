"""Precompiled fastavro read and write calls for one schema.

`schemaless_reader` and `schemaless_writer` re-derive, on every call, what never
changes for a parsed schema: the named-type tables and the option dicts. On the
codec's hot path that is close to a tenth of the time of a small record, so these
calls bind them once and go straight to fastavro's own per-record functions.

Those functions are fastavro internals. The bound calls are used only after a
self-check at import proves they produce exactly what the public API does (same
bytes, same records, with and without schema resolution); otherwise, as on a
fastavro whose internals changed, the public functions are used and only speed is
lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from io import BytesIO
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer

logger = logging.getLogger(__name__)

Reader = Callable[[BytesIO], Any]
Writer = Callable[[bytearray, Mapping[str, Any]], None]

# The options the public functions pass with their default arguments.
_READ_OPTIONS: dict[str, Any] = {
    "return_record_name": False,
    "return_record_name_override": False,
    "handle_unicode_errors": "strict",
    "return_named_type": False,
    "return_named_type_override": False,
}
_WRITE_OPTIONS: dict[str, Any] = {
    "strict": False,
    "strict_allow_default": False,
    "disable_tuple_notation": False,
}


def _named(parsed: Any) -> dict[str, Any]:
    return dict(parsed.get("__named_schemas", {})) if isinstance(parsed, dict) else {}


def _bound_reader(writer: Any, reader: Any | None) -> Reader:
    from fastavro._read import _read_data  # type: ignore[attr-defined]

    named = {"writer": _named(writer), "reader": _named(reader) if reader else {}}

    def read(buffer: BytesIO) -> Any:
        return _read_data(buffer, writer, named, reader, _READ_OPTIONS)

    return read


def _bound_writer(parsed: Any) -> Writer:
    from fastavro._write import write_data  # type: ignore[attr-defined]

    named = _named(parsed)

    def write(buffer: bytearray, record: Mapping[str, Any]) -> None:
        write_data(buffer, record, parsed, named, "", _WRITE_OPTIONS)

    return write


def _public_reader(writer: Any, reader: Any | None) -> Reader:
    def read(buffer: BytesIO) -> Any:
        return schemaless_reader(buffer, writer, reader)

    return read


def _public_writer(parsed: Any) -> Writer:
    def write(buffer: bytearray, record: Mapping[str, Any]) -> None:
        sink = BytesIO()
        schemaless_writer(sink, parsed, record)
        buffer += sink.getvalue()

    return write


def _check_schemas() -> tuple[Any, Any, dict[str, Any]]:
    """An old and a new version of a schema using every kind of type, and a record."""
    kind = {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}
    item = {
        "type": "record",
        "name": "Item",
        "fields": [
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "kind", "type": kind},
        ],
    }
    fields = [
        {"name": "id", "type": "string"},
        {"name": "n", "type": ["null", "long"]},
        {"name": "ratio", "type": "double"},
        {"name": "flag", "type": "boolean"},
        {"name": "raw", "type": "bytes"},
        {"name": "items", "type": {"type": "array", "items": item}},
        {"name": "tags", "type": {"type": "map", "values": "string"}},
        {"name": "again", "type": ["null", "Item"]},
    ]
    added = {"name": "note", "type": ["null", "string"], "default": None}
    old = parse_schema({"type": "record", "name": "x.Check", "fields": fields})
    new = parse_schema(
        {"type": "record", "name": "x.Check", "fields": [*fields, added]}
    )
    at = datetime(2024, 5, 1, 9, 30, 0, 123000, tzinfo=UTC)
    record = {
        "id": "é-1",
        "n": -(2**40),
        "ratio": 0.25,
        "flag": True,
        "raw": b"\x00\xff",
        "items": [{"at": at, "kind": "B"}, {"at": at, "kind": "A"}],
        "tags": {"a": "b"},
        "again": {"at": at, "kind": "A"},
    }
    return old, new, record


def _bound_calls_agree() -> bool:
    """Whether the bound calls match the public functions on this fastavro."""
    try:
        old, new, record = _check_schemas()
        expected = BytesIO()
        schemaless_writer(expected, old, record)
        written = bytearray()
        _bound_writer(old)(written, record)
        if bytes(written) != expected.getvalue():
            return False
        for writer, reader in ((old, None), (old, new)):
            public = schemaless_reader(BytesIO(written), writer, reader)
            bound = _bound_reader(writer, reader)(BytesIO(written))
            if bound != public:
                return False
        return True
    except Exception:  # any change in fastavro's internals means: do not use them
        logger.debug("fastavro internals differ; using its public API", exc_info=True)
        return False


_USE_BOUND = _bound_calls_agree()


def compile_reader(writer: Any, reader: Any | None = None) -> Reader:
    """A call reading one record of parsed schema `writer` from a buffer, resolved
    into parsed schema `reader` when given (and different)."""
    if _USE_BOUND:
        return _bound_reader(writer, reader)
    return _public_reader(writer, reader)


def compile_writer(parsed: Any) -> Writer:
    """A call appending one record of parsed schema `parsed` to a bytearray."""
    if _USE_BOUND:
        return _bound_writer(parsed)
    return _public_writer(parsed)


def uses_fastavro_internals() -> bool:
    """Whether the bound (faster) calls are in use."""
    return _USE_BOUND
