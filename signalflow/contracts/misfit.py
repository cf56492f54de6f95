"""Find where a record does not fit an Avro schema, as a field path.

fastavro's own validation names only the innermost record and field; an integrator
needs the whole path (`enrollment.signals[0].occurred_at`). This walk runs only after
an encode failed, so it favours clarity over speed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

_INT_RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


@dataclass(frozen=True)
class Misfit:
    """The first value that does not fit: its path, what was expected, the value."""

    path: str
    expected: str
    value: Any

    def __str__(self) -> str:
        where = self.path or "the record"
        return f"{where}: expected {self.expected}, got {self.value!r}"


def find_misfit(schema: Any, datum: Any) -> Misfit | None:
    """Return the first place `datum` does not fit the parsed `schema`, or None."""
    named = schema.get("__named_schemas", {}) if isinstance(schema, dict) else {}
    return _Walker(named).check(schema, datum, "")


class _Walker:
    def __init__(self, named: Mapping[str, Any]) -> None:
        self._named = named

    def check(self, schema: Any, datum: Any, path: str) -> Misfit | None:
        if isinstance(schema, list):
            return self._check_union(schema, datum, path)
        if isinstance(schema, str):
            if schema in self._named:
                return self.check(self._named[schema], datum, path)
            return self._check_primitive(schema, None, datum, path)
        kind = schema["type"]
        if kind in ("record", "error"):
            return self._check_record(schema, datum, path)
        if kind == "enum":
            if datum in schema["symbols"]:
                return None
            return Misfit(path, f"one of {schema['symbols']!r}", datum)
        if kind == "array":
            return self._check_array(schema, datum, path)
        if kind == "map":
            return self._check_map(schema, datum, path)
        if kind == "fixed":
            if isinstance(datum, bytes) and len(datum) == schema["size"]:
                return None
            return Misfit(path, f"{schema['size']} bytes", datum)
        return self._check_primitive(kind, schema.get("logicalType"), datum, path)

    def _check_record(self, schema: Any, datum: Any, path: str) -> Misfit | None:
        if not isinstance(datum, Mapping):
            return Misfit(path, f"a {schema['name']} record (a mapping)", datum)
        for field in schema["fields"]:
            name = field["name"]
            field_path = f"{path}.{name}" if path else name
            if name not in datum:
                if "default" in field:
                    continue
                return Misfit(field_path, "a value (the field has no default)", None)
            misfit = self.check(field["type"], datum[name], field_path)
            if misfit is not None:
                return misfit
        return None

    def _check_array(self, schema: Any, datum: Any, path: str) -> Misfit | None:
        if not isinstance(datum, list | tuple):
            return Misfit(path, "a list", datum)
        for index, item in enumerate(datum):
            misfit = self.check(schema["items"], item, f"{path}[{index}]")
            if misfit is not None:
                return misfit
        return None

    def _check_map(self, schema: Any, datum: Any, path: str) -> Misfit | None:
        if not isinstance(datum, Mapping):
            return Misfit(path, "a mapping of strings to values", datum)
        for key, value in datum.items():
            if not isinstance(key, str):
                return Misfit(path, "string keys", key)
            misfit = self.check(schema["values"], value, f"{path}[{key!r}]")
            if misfit is not None:
                return misfit
        return None

    def _check_union(self, branches: list[Any], datum: Any, path: str) -> Misfit | None:
        misfits = [self.check(branch, datum, path) for branch in branches]
        if any(misfit is None for misfit in misfits):
            return None
        # Report from inside the one complex branch when there is one: that is
        # where a record or list that was meant for it went wrong.
        deep = [m for m in misfits if m is not None and m.path != path]
        if len(deep) == 1:
            return deep[0]
        expected = " or ".join(_describe(branch) for branch in branches)
        return Misfit(path, expected, datum)

    def _check_primitive(
        self, kind: str, logical: str | None, datum: Any, path: str
    ) -> Misfit | None:
        if _fits_primitive(kind, logical, datum):
            return None
        expected = f"{kind} ({logical})" if logical else kind
        if logical == "timestamp-millis":
            expected = "an aware datetime or epoch milliseconds (timestamp-millis)"
        return Misfit(path, expected, datum)


def _fits_primitive(kind: str, logical: str | None, datum: Any) -> bool:
    if logical in ("timestamp-millis", "timestamp-micros") and isinstance(
        datum, datetime
    ):
        return True
    if kind == "null":
        return datum is None
    if kind == "boolean":
        return isinstance(datum, bool)
    if kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        return (
            isinstance(datum, int)
            and not isinstance(datum, bool)
            and (low <= datum <= high)
        )
    if kind in ("float", "double"):
        return isinstance(datum, int | float) and not isinstance(datum, bool)
    if kind == "string":
        return isinstance(datum, str)
    if kind == "bytes":
        return isinstance(datum, bytes | bytearray | memoryview)
    return False


def _describe(schema: Any) -> str:
    if isinstance(schema, str):
        return schema.rpartition(".")[2]
    if isinstance(schema, dict):
        if "name" in schema:
            return str(schema["name"]).rpartition(".")[2]
        if schema.get("logicalType"):
            return str(schema["logicalType"])
        return str(schema["type"])
    return "union"
