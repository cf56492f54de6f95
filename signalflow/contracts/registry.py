"""Every version of every schema in `schemas/`, linked, parsed and fingerprinted.

Layout: `schemas/<name>/v<N>.avsc`, one Avro record schema per file, `<name>` being
the logical name a topic's `TopicSpec.schema` gives (`signal`, `step_command`).

A file may use a named type defined in another file by its full name
(`"type": "dev.signalflow.Profile"`), as Avro's own tools allow. The registry links
such a reference by inlining the type's definition where it is first used, exactly
as a Java `Schema.Parser` fed both files would, so the fingerprint is the one over
the full parsing canonical form that any other Avro implementation computes.

When the defining file has several versions (profile v1 and v2), every combination
is linked: an enrollment written while profile was at v1 stays decodable after
profile v2 is added. The combination of the newest versions is what encoders
write; pins (`{"profile": 1}`) select an older one, as an older service would.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form

from signalflow.contracts.errors import SchemaLoadError

logger = logging.getLogger(__name__)

PRIMITIVES = frozenset(
    {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
)
NAMED_KINDS = frozenset({"record", "error", "enum", "fixed"})
_VERSION_FILE = re.compile(r"^v(?P<version>[1-9][0-9]*)\.avsc$")

Json = Any


@dataclass(frozen=True)
class Choice:
    """Which file versions a named type from another file was taken from.

    `versions` lists every version of `schema` that defines the type identically.
    """

    type_name: str
    schema: str
    versions: tuple[int, ...]

    @property
    def version(self) -> int:
        """The newest version of `schema` defining the type this way."""
        return max(self.versions)


@dataclass(frozen=True)
class ResolvedSchema:
    """One linked, parsed writer schema of one version of a logical schema.

    `fingerprint` is the 8-byte CRC-64-AVRO fingerprint of `canonical_form`, in the
    little-endian order single-object encoding puts it on the wire.
    """

    name: str
    version: int
    choices: tuple[Choice, ...]
    canonical_form: str
    fingerprint: bytes
    schema: Json
    parsed: Json = field(repr=False, compare=False)

    def matches(self, pins: Mapping[str, int]) -> bool:
        """Whether this schema agrees with every pinned version it involves."""
        if self.version != pins.get(self.name, self.version):
            return False
        return all(
            pins.get(choice.schema, choice.version) in choice.versions
            for choice in self.choices
        )


@dataclass(frozen=True)
class SchemaFile:
    """The JSON of one `schemas/<name>/v<N>.avsc` file."""

    name: str
    version: int
    path: Path
    document: Json


@dataclass
class _Definition:
    """A named type as one or more versions of one file define it."""

    schema: str
    versions: list[int]
    body: Json
    signature: str


@dataclass(frozen=True)
class _Scope:
    """Named types defined so far while linking one schema, and where from."""

    defined: Mapping[str, str]
    choices: tuple[Choice, ...]

    def define(self, full_name: str, signature: str) -> _Scope:
        return _Scope({**self.defined, full_name: signature}, self.choices)

    def choose(self, choice: Choice) -> _Scope:
        return _Scope(self.defined, (*self.choices, choice))


EMPTY_SCOPE = _Scope({}, ())


def full_name(name: str, namespace: str) -> str:
    """Return the Avro full name of `name` written inside `namespace`."""
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def namespace_of(full: str) -> str:
    """Return the namespace part of a full name (empty for none)."""
    return full.rpartition(".")[0]


def _signature(definition: Json) -> str:
    """A comparable form of a definition, blind to documentation."""

    def strip(node: Json) -> Json:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "doc"}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return json.dumps(strip(definition), sort_keys=True)


def read_schema_files(schema_dir: Path) -> list[SchemaFile]:
    """Read every `<name>/v<N>.avsc` under `schema_dir`, sorted by name and version.

    Raises SchemaLoadError for a file that is not JSON or not a record schema, and
    for a directory with no schema at all.
    """
    files: list[SchemaFile] = []
    for path in sorted(schema_dir.glob("*/v*.avsc")):
        match = _VERSION_FILE.match(path.name)
        if match is None:
            raise SchemaLoadError(f"expected a file named v<N>.avsc, got {str(path)!r}")
        files.append(_read_schema_file(path, int(match["version"])))
    if not files:
        raise SchemaLoadError(f"expected <name>/v<N>.avsc files in {str(schema_dir)!r}")
    files.sort(key=lambda f: (f.name, f.version))
    return files


def _read_schema_file(path: Path, version: int) -> SchemaFile:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaLoadError(f"cannot read schema {str(path)!r}: {exc}") from exc
    if not isinstance(document, dict) or document.get("type") != "record":
        raise SchemaLoadError(f"expected a record schema in {str(path)!r}")
    return SchemaFile(path.parent.name, version, path, document)


class _Linker:
    """Inlines named types from other files, yielding every combination."""

    def __init__(self, files: list[SchemaFile]) -> None:
        self._definitions: dict[str, list[_Definition]] = {}
        # Newest first, so the first combination linked is the newest one.
        for file in sorted(files, key=lambda f: -f.version):
            self._collect(file, file.document, "")

    def _collect(self, file: SchemaFile, node: Json, namespace: str) -> None:
        if isinstance(node, list):
            for member in node:
                self._collect(file, member, namespace)
            return
        if not isinstance(node, dict):
            return
        kind = node.get("type")
        if kind in NAMED_KINDS:
            name = full_name(node["name"], node.get("namespace", namespace))
            body = {k: v for k, v in node.items() if k != "namespace"}
            body["name"] = name
            self._add(name, file, body)
            namespace = namespace_of(name)
        for key in ("type", "items", "values"):
            if not isinstance(node.get(key), str):
                self._collect(file, node.get(key), namespace)
        for record_field in node.get("fields", ()):
            self._collect(file, record_field.get("type"), namespace)

    def _add(self, name: str, file: SchemaFile, body: Json) -> None:
        known = self._definitions.setdefault(name, [])
        signature = _signature(body)
        for other in known:
            if other.signature == signature and other.schema == file.name:
                other.versions.append(file.version)
                return
        known.append(_Definition(file.name, [file.version], body, signature))

    def link(self, node: Json, namespace: str, scope: _Scope) -> Iterator[Linked]:
        """Yield (self-contained schema, scope after it) for each combination."""
        if isinstance(node, str):
            yield from self._link_reference(node, namespace, scope)
        elif isinstance(node, list):
            yield from self._link_sequence(node, namespace, scope)
        elif isinstance(node, dict):
            yield from self._link_complex(node, namespace, scope)
        else:
            raise SchemaLoadError(f"expected a type, got {node!r}")

    def _link_reference(
        self, name: str, namespace: str, scope: _Scope
    ) -> Iterator[Linked]:
        if name in PRIMITIVES:
            yield name, scope
            return
        full = full_name(name, namespace)
        if full in scope.defined:
            yield full, scope
            return
        definitions = self._definitions.get(full)
        if not definitions:
            raise SchemaLoadError(f"type {full!r} is not defined in any schema file")
        for definition in definitions:
            versions = tuple(sorted(definition.versions))
            choice = Choice(full, definition.schema, versions)
            yield from self.link(definition.body, namespace, scope.choose(choice))

    def _link_sequence(
        self, nodes: list[Json], namespace: str, scope: _Scope
    ) -> Iterator[tuple[list[Json], _Scope]]:
        if not nodes:
            yield [], scope
            return
        for head, after_head in self.link(nodes[0], namespace, scope):
            for tail, after_tail in self._link_sequence(
                nodes[1:], namespace, after_head
            ):
                yield [head, *tail], after_tail

    def _link_complex(
        self, node: dict[str, Json], namespace: str, scope: _Scope
    ) -> Iterator[Linked]:
        kind = node.get("type")
        if kind in NAMED_KINDS:
            yield from self._link_named(node, namespace, scope)
        elif kind == "array":
            for items, after in self.link(node["items"], namespace, scope):
                yield {**node, "items": items}, after
        elif kind == "map":
            for values, after in self.link(node["values"], namespace, scope):
                yield {**node, "values": values}, after
        elif isinstance(kind, str) and kind in PRIMITIVES:
            yield node, scope
        else:
            # {"type": <another type>} wraps a reference or a nested definition.
            yield from self.link(kind, namespace, scope)

    def _link_named(
        self, node: dict[str, Json], namespace: str, scope: _Scope
    ) -> Iterator[Linked]:
        name = full_name(node["name"], node.get("namespace", namespace))
        body = {k: v for k, v in node.items() if k != "namespace"}
        body["name"] = name
        signature = _signature(body)
        if name in scope.defined:
            # Defined earlier in this schema: refer to it by name, unless the two
            # definitions disagree, which makes this combination incoherent.
            if scope.defined[name] == signature:
                yield name, scope
            return
        scope = scope.define(name, signature)
        if body["type"] not in ("record", "error"):
            yield body, scope
            return
        inner = namespace_of(name)
        types = [record_field["type"] for record_field in body["fields"]]
        for linked_types, after in self._link_sequence(types, inner, scope):
            fields = [
                {**record_field, "type": linked}
                for record_field, linked in zip(
                    body["fields"], linked_types, strict=True
                )
            ]
            yield {**body, "fields": fields}, after


Linked = tuple[Json, _Scope]


class SchemaRegistry:
    """Every version of every logical schema, resolvable by fingerprint.

    Build it with `SchemaRegistry.load()`; it is immutable afterwards and safe to
    share between threads.
    """

    def __init__(self, resolved: list[ResolvedSchema]) -> None:
        self._by_name: dict[str, list[ResolvedSchema]] = {}
        self._by_fingerprint: dict[str, dict[bytes, ResolvedSchema]] = {}
        for schema in resolved:
            self._by_name.setdefault(schema.name, []).append(schema)
            self._by_fingerprint.setdefault(schema.name, {})[schema.fingerprint] = (
                schema
            )

    @classmethod
    def load(cls, schema_dir: Path | None = None) -> SchemaRegistry:
        """Read, link and fingerprint every schema file under `schema_dir`.

        `schema_dir` defaults to the `schemas/` package. Raises SchemaLoadError for
        a malformed file, an undefined type or a schema fastavro rejects.
        """
        if schema_dir is None:
            from schemas import SCHEMA_DIR

            schema_dir = SCHEMA_DIR
        files = read_schema_files(schema_dir)
        linker = _Linker(files)
        resolved = [schema for file in files for schema in _resolve_file(linker, file)]
        logger.debug("loaded %d schema versions from %s", len(resolved), schema_dir)
        return cls(resolved)

    def names(self) -> list[str]:
        """The logical schema names, sorted."""
        return sorted(self._by_name)

    def versions(self, name: str) -> list[int]:
        """The file versions of a logical schema, oldest first."""
        return sorted({schema.version for schema in self._schemas(name)})

    def all_of(self, name: str) -> list[ResolvedSchema]:
        """Every linked writer schema of a logical schema, newest combination first."""
        return list(self._schemas(name))

    def preferred(
        self, name: str, pins: Mapping[str, int] | None = None
    ) -> ResolvedSchema:
        """The schema to write and read `name` with: the newest, or the pinned one.

        `pins` maps logical schema names to a version, both for `name` itself and for
        the files whose types it uses. Raises SchemaLoadError when no linked schema
        agrees with the pins.
        """
        schemas = self._schemas(name)
        pins = pins or {}
        newest = max(schema.version for schema in schemas)
        wanted = {name: newest, **pins}
        for schema in schemas:
            if schema.matches(wanted):
                return schema
        raise SchemaLoadError(
            f"no version of schema {name!r} agrees with pins {pins!r}"
        )

    def by_fingerprint(self, name: str, fingerprint: bytes) -> ResolvedSchema | None:
        """The version of `name` with this fingerprint, or None."""
        return self._by_fingerprint.get(name, {}).get(fingerprint)

    def _schemas(self, name: str) -> list[ResolvedSchema]:
        try:
            return self._by_name[name]
        except KeyError:
            raise SchemaLoadError(
                f"expected one of the schemas {self.names()!r}, got {name!r}"
            ) from None


def _resolve_file(linker: _Linker, file: SchemaFile) -> list[ResolvedSchema]:
    resolved: dict[bytes, ResolvedSchema] = {}
    for schema, scope in linker.link(file.document, "", EMPTY_SCOPE):
        try:
            canonical = to_parsing_canonical_form(schema)
            parsed = parse_schema(schema, _write_hint=True)
        except Exception as exc:  # fastavro raises several unrelated types here
            raise SchemaLoadError(
                f"schema {str(file.path)!r} is invalid: {exc}"
            ) from exc
        crc = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
        resolved.setdefault(
            crc,
            ResolvedSchema(
                file.name, file.version, scope.choices, canonical, crc, schema, parsed
            ),
        )
    if not resolved:
        raise SchemaLoadError(f"schema {str(file.path)!r} links to no coherent whole")
    return list(resolved.values())
