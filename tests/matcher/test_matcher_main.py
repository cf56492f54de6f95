"""The matcher process's own safety net: it stops at once when a batch cannot be
written out, and a start after such a stop rebuilds its tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from services.matcher.main import (
    EXIT_AFTER_FAILED_BATCH,
    RUNNING_MARKER,
    discard_state_after_crash,
)

STOPS = """
import logging, sys
logging.basicConfig(stream=sys.stderr)
from services.matcher.main import stop_at_once
try:
    stop_at_once(RuntimeError("the broker refused an enrollment"))
finally:
    print("cleanup ran")
"""


def test_stop_at_once_leaves_without_running_anything_else() -> None:
    done = subprocess.run(
        [sys.executable, "-c", STOPS], capture_output=True, text=True, timeout=60
    )

    assert done.returncode == EXIT_AFTER_FAILED_BATCH
    assert "cleanup ran" not in done.stdout
    assert "a batch could not be written out" in done.stderr
    assert "the broker refused an enrollment" in done.stderr


def test_a_start_after_an_unclean_stop_discards_the_tables(tmp_path: Path) -> None:
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "people-0.db").write_text("rows")
    (tmp_path / RUNNING_MARKER).write_text("4242")

    assert discard_state_after_crash(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_start_after_a_clean_stop_keeps_the_tables(tmp_path: Path) -> None:
    (tmp_path / "tables").mkdir()

    assert not discard_state_after_crash(tmp_path)
    assert [entry.name for entry in tmp_path.iterdir()] == ["tables"]
