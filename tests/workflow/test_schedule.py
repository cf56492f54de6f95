"""Schedules: next run times in a time zone, short months, weekday filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter

from signalflow.workflow.schedule import Reenrollment, Schedule

SCHEDULE: TypeAdapter[Any] = TypeAdapter(Schedule)


def schedule(data: dict[str, Any]) -> Any:
    return SCHEDULE.validate_python(data)


def test_realtime_has_no_next_run() -> None:
    assert schedule({"kind": "realtime"}).next_run(datetime.now(UTC)) is None


def test_weekly_runs_on_its_day_at_local_time() -> None:
    weekly = schedule(
        {"kind": "weekly", "day": "mon", "at": "09:30", "timezone": "America/New_York"}
    )

    # Wednesday 5 June 2024; the next Monday is 10 June, 09:30 EDT = 13:30 UTC.
    assert weekly.next_run(datetime(2024, 6, 5, tzinfo=UTC)) == datetime(
        2024, 6, 10, 13, 30, tzinfo=UTC
    )


def test_next_run_is_strictly_after_the_given_moment() -> None:
    daily = schedule({"kind": "daily", "at": "09:00", "timezone": "UTC"})
    run = datetime(2024, 6, 5, 9, tzinfo=UTC)

    assert daily.next_run(run) == run + timedelta(days=1)


def test_daily_weekday_filter_skips_the_weekend() -> None:
    daily = schedule(
        {
            "kind": "daily",
            "weekdays": ["mon", "tue", "wed", "thu", "fri"],
            "at": "08:00",
        }
    )

    # Friday 7 June 2024 after the run: next is Monday 10 June.
    assert daily.next_run(datetime(2024, 6, 7, 12, tzinfo=UTC)) == datetime(
        2024, 6, 10, 8, tzinfo=UTC
    )


def test_monthly_day_31_runs_on_the_last_day_of_short_months() -> None:
    monthly = schedule({"kind": "monthly", "day": 31, "at": "06:00", "timezone": "UTC"})

    runs = []
    moment = datetime(2024, 1, 31, 7, tzinfo=UTC)
    for _ in range(3):
        moment = monthly.next_run(moment)
        runs.append(moment.date().isoformat())

    assert runs == ["2024-02-29", "2024-03-31", "2024-04-30"]


def test_daylight_saving_keeps_the_local_time() -> None:
    daily = schedule({"kind": "daily", "at": "09:00", "timezone": "Europe/Berlin"})

    before = daily.next_run(datetime(2024, 3, 29, 12, tzinfo=UTC))
    after = daily.next_run(before)

    # Clocks go forward on 31 March: 09:00 is 08:00 UTC, then 07:00 UTC.
    assert (before, after) == (
        datetime(2024, 3, 30, 8, tzinfo=UTC),
        datetime(2024, 3, 31, 7, tzinfo=UTC),
    )


def test_next_run_needs_an_aware_moment() -> None:
    daily = schedule({"kind": "daily"})

    with pytest.raises(ValueError, match="expected an aware datetime"):
        daily.next_run(datetime(2024, 1, 1))


def test_reenrollment_never_and_after_days() -> None:
    never = Reenrollment.model_validate("never")
    monthly = Reenrollment.model_validate({"after_days": 30})
    first = datetime(2024, 1, 1, tzinfo=UTC)

    assert never.never and not never.allows(first, first + timedelta(days=999))
    assert never.allows(None, first)
    assert not monthly.allows(first, first + timedelta(days=29))
    assert monthly.allows(first, first + timedelta(days=30))
