"""Example records: realistic signals, and any schema's records synthesized.

Tests, benchmarks and the local demo need valid records of every schema. `signal()`
builds a plausible signal from a number; `synthesize()` builds a random record that
fits any parsed schema, so a check can cover every schema without a hand-written
example of each.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

SIGNAL_TYPES = (
    "funding",
    "hiring_surge",
    "new_tech",
    "job_change",
    "new_hire",
    "promotion",
    "multi_thread",
    "past_champion",
)
_PERSON_TYPES = frozenset({"job_change", "new_hire", "promotion", "past_champion"})
_EPOCH_2024 = datetime(2024, 1, 1, tzinfo=UTC)


def signal(index: int, *, accounts: int = 1000) -> dict[str, Any]:
    """A valid signal record (newest schema), deterministic in `index`.

    Signals spread over `accounts` accounts; person-scoped types get a person key.
    """
    kind = SIGNAL_TYPES[index % len(SIGNAL_TYPES)]
    account = f"acct-{index % accounts:05d}"
    person_scoped = kind in _PERSON_TYPES
    return {
        "signal_id": f"sig-{index:09d}",
        "type": kind,
        "scope": "PERSON" if person_scoped else "COMPANY",
        "account_key": account,
        "person_key": f"{account}-p{index % 7}" if person_scoped else None,
        "occurred_at": _EPOCH_2024 + timedelta(seconds=index),
        "source": "example",
        "attributes": {"amount": f"{index % 50}M", "round": "B"}
        if kind == "funding"
        else {},
        "source_url": f"https://news.example/{index}" if index % 3 == 0 else None,
    }


def synthesize(schema: Any, *, seed: int = 0) -> Any:
    """A random value that fits the parsed fastavro `schema`, reproducible by seed.

    Timestamps are whole-millisecond aware datetimes, so they survive a round trip.
    """
    named = schema.get("__named_schemas", {}) if isinstance(schema, dict) else {}
    return _Synthesizer(named, random.Random(seed)).value(schema)


class _Synthesizer:
    def __init__(self, named: Mapping[str, Any], rng: random.Random) -> None:
        self._named = named
        self._rng = rng

    def value(self, schema: Any, depth: int = 0) -> Any:
        if isinstance(schema, list):
            return self._union(schema, depth)
        if isinstance(schema, str):
            if schema in self._named:
                return self.value(self._named[schema], depth)
            return self._primitive(schema, None)
        kind = schema["type"]
        if kind in ("record", "error"):
            return {
                f["name"]: self.value(f["type"], depth + 1) for f in schema["fields"]
            }
        if kind == "enum":
            return self._rng.choice(schema["symbols"])
        if kind == "array":
            count = self._rng.randint(0, 3)
            return [self.value(schema["items"], depth + 1) for _ in range(count)]
        if kind == "map":
            count = self._rng.randint(0, 3)
            return {
                f"k{i}": self.value(schema["values"], depth + 1) for i in range(count)
            }
        if kind == "fixed":
            return self._rng.randbytes(schema["size"])
        return self._primitive(kind, schema.get("logicalType"))

    def _union(self, branches: list[Any], depth: int) -> Any:
        # Deep inside a structure prefer null, so recursive types stay finite.
        if "null" in branches and (depth > 4 or self._rng.random() < 0.3):
            return None
        return self.value(self._rng.choice([b for b in branches if b != "null"]), depth)

    def _primitive(self, kind: str, logical: str | None) -> Any:
        rng = self._rng
        if logical == "timestamp-millis":
            return _EPOCH_2024 + timedelta(milliseconds=rng.randint(0, 10**11))
        match kind:
            case "null":
                return None
            case "boolean":
                return rng.random() < 0.5
            case "int":
                return rng.randint(-(2**31), 2**31 - 1)
            case "long":
                return rng.randint(-(2**63), 2**63 - 1)
            case "float":
                return float(rng.randint(-1000, 1000)) / 4
            case "double":
                return rng.uniform(-1e6, 1e6)
            case "bytes":
                return rng.randbytes(rng.randint(0, 8))
            case "string":
                return "".join(
                    rng.choice("abcxyzé🙂 ") for _ in range(rng.randint(0, 8))
                )
        raise ValueError(f"expected an Avro type, got {kind!r}")
