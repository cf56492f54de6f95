"""Where the matcher's "now" comes from.

Every decision that depends on time (windows, schedules, pending age, caps per
period) asks a `Clock`, never `datetime.now()`, so tests can set the time instead of
waiting for it. `SystemClock` is the production clock; `TestClock` is set by hand;
`FileClock` reads the time from a file, which lets a test drive a matcher running
in another process.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol


class Clock(Protocol):
    """A source of the current time as an aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class TestClock:
    """A clock that stands still until it is set or advanced.

    Raises ValueError for a naive datetime: every time here is aware.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, start: datetime) -> None:
        self._now = _aware(start)

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = _aware(moment)

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by `delta` and return the new time."""
        self._now += delta
        return self._now


class FileClock:
    """Reads the current time from a file holding one ISO 8601 time.

    While the file is missing the system clock is used. The file is read again
    only when its modification time changes. Raises ValueError when the file holds
    something that is not an aware ISO 8601 time.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp: int | None = None
        self._value: datetime | None = None

    def now(self) -> datetime:
        try:
            stamp = os.stat(self._path).st_mtime_ns
        except FileNotFoundError:
            return datetime.now(UTC)
        if self._value is None or stamp != self._stamp:
            text = self._path.read_text().strip()
            self._value = _aware(datetime.fromisoformat(text))
            self._stamp = stamp
        return self._value

    @staticmethod
    def write(path: Path, moment: datetime) -> None:
        """Set the time a `FileClock` on `path` reads (atomically)."""
        temporary = path.with_suffix(".tmp")
        temporary.write_text(_aware(moment).isoformat())
        os.replace(temporary, path)


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"expected an aware datetime, got {moment!r}")
    return moment.astimezone(UTC)
