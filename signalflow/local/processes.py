"""Starting detached processes and stopping exactly those, by recorded identity.

A process is recorded as its pid plus its start time from `/proc`, so a pid the
kernel has since handed to another program is never signalled. Processes are
spawned in their own session: they outlive the command that started them and a
Ctrl-C in that terminal does not reach them.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessRecord:
    """One process we started: its pid and the kernel's start time for it."""

    pid: int
    start_time: int | None

    def is_alive(self) -> bool:
        """Return whether this very process still runs (not a zombie, not a reuse)."""
        _reap(self.pid)
        if _PROC.is_dir():
            stat = _read_stat(self.pid)
            if stat is None:
                return False
            state, start_time = stat
            if state == "Z":
                # It may have exited after the reap above; reap it now.
                _reap(self.pid)
                return False
            return start_time == self.start_time
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def signal(self, signum: signal.Signals) -> None:
        """Send `signum` if this process is still alive; do nothing otherwise."""
        if not self.is_alive():
            return
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            logger.debug("process %s exited before %s", self.pid, signum.name)


def spawn(argv: Sequence[str], *, output: Path) -> ProcessRecord:
    """Start `argv` detached, stdout and stderr appended to `output`.

    `argv[0]` must be an absolute path. Returns as soon as the process exists; it
    does not wait for the program to be ready.
    """
    if not os.path.isabs(argv[0]):
        raise ValueError(f"expected an absolute program path, got {argv[0]!r}")
    output.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    file_actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(output), flags, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    pid = os.posix_spawn(
        argv[0], list(argv), dict(os.environ), file_actions=file_actions, setsid=True
    )
    record = ProcessRecord(pid=pid, start_time=_start_time(pid))
    logger.debug("started %s as pid %s", Path(argv[0]).name, pid)
    return record


def stop_all(records: Iterable[ProcessRecord], *, grace_s: float) -> None:
    """SIGTERM every live record at once, then SIGKILL what outlives `grace_s`.

    Waits until every one of them has exited. Signals nothing but these processes.
    """
    alive = [record for record in records if record.is_alive()]
    for record in alive:
        record.signal(signal.SIGTERM)

    remaining = _wait_for_exit(alive, timeout_s=grace_s)
    for record in remaining:
        logger.warning(
            "pid %s still runs %.0fs after SIGTERM; sending SIGKILL",
            record.pid,
            grace_s,
        )
        record.signal(signal.SIGKILL)
    for record in _wait_for_exit(remaining, timeout_s=10.0):
        logger.error("pid %s still runs 10s after SIGKILL; giving up", record.pid)


def kill(record: ProcessRecord) -> None:
    """SIGKILL one process and wait until it is gone."""
    record.signal(signal.SIGKILL)
    _wait_for_exit([record], timeout_s=10.0)


def _wait_for_exit(
    records: list[ProcessRecord], *, timeout_s: float
) -> list[ProcessRecord]:
    deadline = time.monotonic() + timeout_s
    remaining = records
    while remaining:
        remaining = [record for record in remaining if record.is_alive()]
        if not remaining or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    return remaining


def _reap(pid: int) -> None:
    # A child of this process stays a zombie until waited for; reaping it here is
    # what lets the test harness see a killed broker as gone.
    with suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _start_time(pid: int) -> int | None:
    stat = _read_stat(pid)
    return stat[1] if stat else None


def _read_stat(pid: int) -> tuple[str, int] | None:
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


class StateFile:
    """A JSON file recording what runs, written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, Any] | None:
        """Return the recorded state, or None when nothing was recorded."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        state: dict[str, Any] = json.loads(text)
        return state

    def write(self, state: dict[str, Any]) -> None:
        """Replace the recorded state."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(state, indent=2) + "\n")
        partial.replace(self.path)

    def clear(self) -> None:
        """Forget the recorded state."""
        self.path.unlink(missing_ok=True)


def record_to_json(record: ProcessRecord) -> dict[str, Any]:
    """Return `record` as a JSON-ready dict."""
    return asdict(record)


def record_from_json(data: dict[str, Any]) -> ProcessRecord:
    """Return the record a `record_to_json` dict describes."""
    return ProcessRecord(pid=int(data["pid"]), start_time=data.get("start_time"))


@contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path`, waiting for other holders to finish."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
