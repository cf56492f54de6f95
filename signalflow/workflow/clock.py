"""Time values as profiles and signals carry them, and calendar-month arithmetic.

Avro `timestamp-millis` fields arrive as aware datetimes (fastavro) or as integer
milliseconds (JSON); both become aware UTC datetimes here. Naive datetimes and
ISO strings without an offset are taken as UTC.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time
from typing import Any


def as_utc(value: Any) -> datetime | None:
    """Return `value` as an aware UTC datetime, or None when it is not a time.

    Accepts datetimes, dates (midnight UTC), integer or float milliseconds since
    the epoch, and ISO 8601 strings.
    """
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    if isinstance(value, date):
        return datetime.combine(value, time(), UTC)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, UTC)
    if isinstance(value, str):
        return parse_when(value)
    return None


def parse_when(text: str) -> datetime | None:
    """Parse an ISO date or datetime (`2024-05-01`, `2024-05-01T09:00:00Z`)."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def add_months(moment: datetime, months: int) -> datetime:
    """Shift by whole calendar months; a day the target month lacks becomes its last."""
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    last_day = calendar.monthrange(year, month + 1)[1]
    return moment.replace(year=year, month=month + 1, day=min(moment.day, last_day))


def months_elapsed_at(start: datetime, months: int) -> datetime:
    """The first moment `now` at which `add_months(now, -months) >= start`.

    That is when something that happened at `start` becomes "at least `months`
    months ago". Normally `start` plus the months; when the day is clamped (31
    August plus six months) the first instant of the following month.
    """
    shifted = add_months(start, months)
    if shifted.day == start.day:
        return shifted
    year, month = divmod(shifted.year * 12 + shifted.month, 12)
    return shifted.replace(
        year=year, month=month + 1, day=1, hour=0, minute=0, second=0, microsecond=0
    )


def months_reached(start: datetime, now: datetime, months: int) -> bool:
    """Whether `now >= months_elapsed_at(start, months)`, without building dates.

    The matcher asks this for every prospect with a "before N months ago"
    predicate, so it compares calendar fields instead of shifting datetimes.
    """
    if start.tzinfo is not UTC:
        start = start.astimezone(UTC)
    if now.tzinfo is not UTC:
        now = now.astimezone(UTC)
    elapsed = (now.year - start.year) * 12 + now.month - start.month
    if elapsed != months:
        return elapsed > months
    if start.day > 28 and start.day > calendar.monthrange(now.year, now.month)[1]:
        return False
    return (now.day, now.time()) >= (start.day, start.time())
