"""Avro schemas of every topic; `SCHEMA_DIR` is where the `.avsc` files live."""

from pathlib import Path

SCHEMA_DIR = Path(__file__).parent
