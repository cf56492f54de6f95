"""When a workflow runs, and how many prospects it may take.

`realtime` enrolls a prospect as soon as it matches. `daily`, `weekly` and `monthly`
hold matches and enroll them at a time of day in an IANA time zone; `next_run()`
says when. A monthly day beyond the month's length (31 in April) runs on the
month's last day. A local time that a daylight-saving jump skips runs at the same
wall-clock time shifted by the jump (zoneinfo's rule for such times).
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from signalflow.workflow.errors import user_error

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Realtime(_Model):
    """Enroll each prospect as soon as it matches."""

    kind: Literal["realtime"] = "realtime"

    def next_run(self, after: datetime) -> datetime | None:
        """Realtime workflows have no runs to schedule: always None."""
        return None


class _Timed(_Model):
    at: time = time(9, 0)
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise user_error(
                "{value!r} is not a time zone name; use one such as "
                "'America/New_York' or 'Europe/Berlin'.",
                value=value,
            ) from None
        return value

    @field_validator("at")
    @classmethod
    def _naive_time(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise user_error("Give the time of day without an offset; set the zone.")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def next_run(self, after: datetime) -> datetime | None:
        """Return the first run strictly after `after` (an aware datetime), in UTC."""
        if after.tzinfo is None:
            raise ValueError(f"expected an aware datetime, got {after!r}")
        local_day = after.astimezone(self.zone).date()
        # Every schedule runs at least once in any 62 consecutive days.
        for offset in range(63):
            day = local_day + timedelta(days=offset)
            if not self.runs_on(day):
                continue
            moment = datetime.combine(day, self.at, self.zone).astimezone(UTC)
            if moment > after:
                return moment
        raise RuntimeError(f"no run found within 62 days of {after!r} for {self!r}")

    def runs_on(self, day: date) -> bool:
        """Whether the schedule runs on a local calendar day."""
        raise NotImplementedError  # every concrete schedule overrides it


def _distinct_days(value: list[Weekday] | None) -> list[Weekday] | None:
    if value is None:
        return None
    if not value:
        raise user_error("Choose at least one weekday, or leave the filter out.")
    if len(set(value)) != len(value):
        raise user_error("Each weekday may be listed only once.")
    return value


class Daily(_Timed):
    """Run every day at `at`, optionally only on some weekdays (e.g. Mon-Fri)."""

    kind: Literal["daily"] = "daily"
    weekdays: list[Weekday] | None = None

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, value: list[Weekday] | None) -> list[Weekday] | None:
        return _distinct_days(value)

    def runs_on(self, day: date) -> bool:
        return self.weekdays is None or WEEKDAYS[day.weekday()] in self.weekdays


class Weekly(_Timed):
    """Run once a week, on `day` at `at`."""

    kind: Literal["weekly"] = "weekly"
    day: Weekday | None = Field(default=None, validate_default=True)

    @field_validator("day")
    @classmethod
    def _has_day(cls, value: Weekday | None) -> Weekday | None:
        if value is None:
            raise user_error("Weekly schedules need a day of the week.")
        return value

    def runs_on(self, day: date) -> bool:
        return WEEKDAYS[day.weekday()] == self.day


class Monthly(_Timed):
    """Run once a month on `day` (1-31) at `at`; the last day in shorter months."""

    kind: Literal["monthly"] = "monthly"
    day: int | None = Field(default=None, validate_default=True)

    @field_validator("day")
    @classmethod
    def _day_of_month(cls, value: int | None) -> int | None:
        if value is None:
            raise user_error("Monthly schedules need a day of the month (1 to 31).")
        if not 1 <= value <= 31:
            raise user_error(
                "A day of the month is 1 to 31; got {value!r}. Months shorter "
                "than the day run on their last day.",
                value=value,
            )
        return value

    def runs_on(self, day: date) -> bool:
        last = calendar.monthrange(day.year, day.month)[1]
        return day.day == min(self.day or 1, last)


Schedule = Annotated[Realtime | Daily | Weekly | Monthly, Field(discriminator="kind")]
"""When a workflow enrolls its matches, told apart by `kind`."""


class Limits(_Model):
    """Caps on enrollments; None means no cap.

    `max_per_account` and `max_per_rep` count a workflow's enrollments over its
    life (a rep is the record owner); `max_per_run` caps one scheduled run, or one
    calendar day (in UTC) of a realtime workflow.
    """

    max_per_account: int | None = None
    max_per_rep: int | None = None
    max_per_run: int | None = None

    @field_validator("max_per_account", "max_per_rep", "max_per_run")
    @classmethod
    def _at_least_one(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise user_error(
                "A limit must be at least 1; leave it empty for no limit. "
                "Got {value!r}.",
                value=value,
            )
        return value


class Reenrollment(_Model):
    """Whether a prospect may enter the workflow again, and after how long.

    Written as `"never"` or `{"after_days": N}`; `after_days` counts from the
    prospect's previous enrollment.
    """

    after_days: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _accept_never(cls, value: Any) -> Any:
        if value == "never":
            return {"after_days": None}
        return value

    @field_validator("after_days")
    @classmethod
    def _positive(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= 3650:
            raise user_error(
                "Re-enrollment waits 1 to 3650 days; got {value!r}. Choose 'never' "
                "to enroll each prospect only once.",
                value=value,
            )
        return value

    @property
    def never(self) -> bool:
        return self.after_days is None

    def allows(self, previous: datetime | None, now: datetime) -> bool:
        """Whether a prospect last enrolled at `previous` may enroll again at `now`."""
        if previous is None:
            return True
        if self.after_days is None:
            return False
        return now - previous >= timedelta(days=self.after_days)


NEVER = Reenrollment()
