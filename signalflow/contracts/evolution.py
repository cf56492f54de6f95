"""The evolution rule: a schema's next version only adds fields with defaults.

Under this rule a reader of either version reads data written with the other: the
newer reader fills the added fields from their defaults, the older one skips them.
Documentation may change freely; nothing else may.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from signalflow.contracts.registry import read_schema_files


def evolution_violations(schema_dir: Path) -> list[str]:
    """Every departure from the rule between consecutive versions of each schema.

    Returns readable sentences naming the schema, the versions and the field path;
    an empty list means every schema evolved by adding defaulted fields only.
    """
    by_name: dict[str, list[Any]] = {}
    for file in read_schema_files(schema_dir):
        by_name.setdefault(file.name, []).append(file)
    violations: list[str] = []
    for name, files in sorted(by_name.items()):
        for older, newer in zip(files, files[1:], strict=False):
            where = f"{name} v{older.version} -> v{newer.version}"
            if newer.version != older.version + 1:
                violations.append(f"{where}: versions must be consecutive")
            violations.extend(
                f"{where}: {problem}"
                for problem in _compare(older.document, newer.document, "")
            )
    return violations


def _compare(old: Any, new: Any, path: str) -> list[str]:
    """Differences between two type definitions that the rule does not allow."""
    if _is_record(old) and _is_record(new):
        return _compare_records(old, new, path)
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [p for o, n in zip(old, new, strict=True) for p in _compare(o, n, path)]
    if isinstance(old, dict) and isinstance(new, dict):
        return _compare_complex(old, new, path)
    if _shape(old) != _shape(new):
        return [f"{path!r} changed type from {_shape(old)} to {_shape(new)}"]
    return []


def _compare_records(old: dict[str, Any], new: dict[str, Any], path: str) -> list[str]:
    problems: list[str] = []
    if old["name"] != new["name"] or old.get("namespace") != new.get("namespace"):
        problems.append(f"record {path or new['name']!r} was renamed")
    new_fields = {f["name"]: f for f in new["fields"]}
    old_names = {f["name"] for f in old["fields"]}
    for field in old["fields"]:
        field_path = f"{path}.{field['name']}" if path else field["name"]
        if field["name"] not in new_fields:
            problems.append(f"field {field_path!r} was removed")
            continue
        problems.extend(
            _compare(field["type"], new_fields[field["name"]]["type"], field_path)
        )
    for field in new["fields"]:
        if field["name"] not in old_names and "default" not in field:
            field_path = f"{path}.{field['name']}" if path else field["name"]
            problems.append(f"field {field_path!r} was added without a default")
    return problems


def _compare_complex(old: dict[str, Any], new: dict[str, Any], path: str) -> list[str]:
    if old.get("type") != new.get("type"):
        return [f"{path!r} changed type from {_shape(old)} to {_shape(new)}"]
    if old["type"] == "array":
        return _compare(old["items"], new["items"], f"{path}[]")
    if old["type"] == "map":
        return _compare(old["values"], new["values"], f"{path}{{}}")
    if _shape(old) != _shape(new):
        return [f"{path!r} changed type from {_shape(old)} to {_shape(new)}"]
    return []


def _is_record(node: Any) -> bool:
    return isinstance(node, dict) and node.get("type") in ("record", "error")


def _shape(node: Any) -> str:
    """A type's JSON without its documentation, for comparison and messages."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "doc"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return json.dumps(strip(node), sort_keys=True)
