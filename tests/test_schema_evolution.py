"""Schema evolution: the rule every schema follows, and readers of either version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from schemas import SCHEMA_DIR
from signalflow.contracts import Codec, ResolvedSchema, examples
from signalflow.contracts.evolution import evolution_violations
from signalflow.contracts.registry import read_schema_files


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec.load()


def pins_of(schema: ResolvedSchema) -> dict[str, int]:
    """The pins that make a codec write exactly this linked schema."""
    pins = {choice.schema: choice.version for choice in schema.choices}
    pins[schema.name] = schema.version
    return pins


def without_fields_absent_from(record: dict[str, Any], reader: Any) -> dict[str, Any]:
    names = {field["name"] for field in reader["fields"]}
    return {key: value for key, value in record.items() if key in names}


def test_every_schema_only_adds_fields_with_defaults() -> None:
    assert evolution_violations(SCHEMA_DIR) == []


def test_every_schema_file_is_documented_in_the_project_namespace() -> None:
    def undocumented(node: Any, path: str) -> list[str]:
        if isinstance(node, list):
            return [p for member in node for p in undocumented(member, path)]
        if not isinstance(node, dict):
            return []
        missing = []
        if node.get("type") in ("record", "enum") and not node.get("doc"):
            missing.append(f"{path} ({node['name']})")
        for field in node.get("fields", ()):
            field_path = f"{path}.{field['name']}"
            if not field.get("doc"):
                missing.append(field_path)
            missing.extend(undocumented(field["type"], field_path))
        for key in ("items", "values"):
            missing.extend(undocumented(node.get(key), path))
        return missing

    for file in read_schema_files(SCHEMA_DIR):
        assert file.document["namespace"] == "dev.signalflow", file.path
        assert undocumented(file.document, f"{file.name}/v{file.version}") == []


def test_signal_has_a_second_version(codec: Codec) -> None:
    assert codec.registry.versions("signal") == [1, 2]
    assert codec.writer_schema("signal").version == 2


def test_newer_reader_reads_older_signal_with_defaults(codec: Codec) -> None:
    old_codec = codec.pinned({"signal": 1})
    record = examples.signal(9)
    del record["source_url"]

    data = old_codec.encode("signal", record)

    assert codec.decode("signal", data) == {**record, "source_url": None}
    assert data[2:10] != codec.encode("signal", examples.signal(9))[2:10]


def test_older_reader_reads_newer_signal_without_added_field(codec: Codec) -> None:
    old_codec = codec.pinned({"signal": 1})
    record = examples.signal(12)
    assert record["source_url"] is not None

    decoded = old_codec.decode("signal", codec.encode("signal", record))

    assert "source_url" not in decoded
    assert decoded == {k: v for k, v in record.items() if k != "source_url"}


@pytest.mark.parametrize("name", Codec.load().registry.names())
def test_every_linked_version_reads_both_ways(codec: Codec, name: str) -> None:
    newest = codec.writer_schema(name)
    for schema in codec.registry.all_of(name):
        older = codec.pinned(pins_of(schema))
        assert older.writer_schema(name).fingerprint == schema.fingerprint
        for seed in range(5):
            old_record = examples.synthesize(schema.parsed, seed=seed)
            new_record = examples.synthesize(newest.parsed, seed=seed)

            upgraded = codec.decode(name, older.encode(name, old_record))
            downgraded = older.decode(name, codec.encode(name, new_record))

            assert without_fields_absent_from(upgraded, schema.schema) == old_record
            assert downgraded == without_fields_absent_from(new_record, schema.schema)


def write_versions(tmp_path: Path, *documents: dict[str, Any]) -> Path:
    folder = tmp_path / "thing"
    folder.mkdir()
    for version, document in enumerate(documents, start=1):
        (folder / f"v{version}.avsc").write_text(json.dumps(document))
    return tmp_path


def thing(*fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "record",
        "name": "Thing",
        "namespace": "dev.signalflow",
        "fields": list(fields),
    }


ID = {"name": "id", "type": "string", "doc": "id"}


@pytest.mark.parametrize(
    ("newer", "complaint"),
    [
        (thing(ID, {"name": "n", "type": "int"}), "'n' was added without a default"),
        (thing(), "'id' was removed"),
        (thing({"name": "id", "type": "long"}), "'id' changed type"),
    ],
)
def test_evolution_check_rejects_changes_other_than_defaulted_fields(
    tmp_path: Path, newer: dict[str, Any], complaint: str
) -> None:
    schema_dir = write_versions(tmp_path, thing(ID), newer)

    violations = evolution_violations(schema_dir)

    assert len(violations) == 1
    assert complaint in violations[0]


def test_evolution_check_accepts_a_defaulted_field_and_new_docs(tmp_path: Path) -> None:
    added = {"name": "note", "type": ["null", "string"], "default": None}
    schema_dir = write_versions(
        tmp_path, thing(ID), thing({**ID, "doc": "the thing's id"}, added)
    )

    assert evolution_violations(schema_dir) == []
