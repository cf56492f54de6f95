"""The matcher's decisions for one partition, on in-memory state and a test clock.

Each expectation is worked out by hand in the test; the clock is driven, never
waited for. Redis is the real one (caps and test-run slots).
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

from matcher_harness import START, Harness

from signalflow.contracts import Codec

GUIDE_AUDIENCE = {
    "kind": "all",
    "of": [
        {"kind": "company_signal", "types": ["funding"]},
        {"kind": "person_signal", "types": ["multi_thread"]},
        {"kind": "has_email", "value": True},
        {"kind": "last_activity", "condition": "before", "months": 6, "or_empty": True},
    ],
}

DAY = timedelta(days=1)


async def test_guide_audience_enrolls_exactly_the_matching_people(
    harness: Harness,
) -> None:
    await harness.activate(GUIDE_AUDIENCE)
    old = START - timedelta(days=200)
    recent = START - timedelta(days=30)
    # acme is funded; globex is not.
    await harness.signal("funding", "acme")
    people = {
        "ann": dict(email="ann@acme.io", last_activity=None),  # matches
        "bob": dict(email="bob@acme.io", last_activity=old),  # matches
        "cyd": dict(email=None, last_activity=None),  # no email
        "dee": dict(email="dee@acme.io", last_activity=recent),  # active lately
        "eve": dict(email="eve@acme.io", last_activity=None),  # no multi-thread
    }
    for key, profile in people.items():
        await harness.person(key, "acme", **profile)
    await harness.person("gus", "globex", email="gus@globex.io")
    for key in ("ann", "bob", "cyd", "dee", "gus"):
        account = "globex" if key == "gus" else "acme"
        await harness.signal("multi_thread", account, key)

    assert sorted(harness.outbox.people("wf")) == ["ann", "bob"]

    # More events for the same people enroll nobody twice.
    await harness.signal("funding", "acme")
    await harness.signal("multi_thread", "acme", "ann")
    await harness.person("ann", "acme", email="ann@new.io")
    assert sorted(harness.outbox.people("wf")) == ["ann", "bob"]


async def test_enrollment_carries_owners_signals_and_explanation(
    harness: Harness,
) -> None:
    await harness.activate(GUIDE_AUDIENCE)
    await harness.account("acme", owner="olga", name="Acme")
    await harness.person("ann", "acme", owner="rick", title="VP Sales")
    await harness.signal("funding", "acme", amount="10M", signal_id="fund-1")
    await harness.signal("multi_thread", "acme", "ann", signal_id="mt-1")

    [enrollment] = harness.outbox.enrollments
    assert enrollment["mode"] == "LIVE"
    assert enrollment["person"]["owner"] == "rick"
    assert enrollment["account"]["owner"] == "olga"
    assert {s["signal_id"] for s in enrollment["signals"]} == {"fund-1", "mt-1"}
    assert [o["held"] for o in enrollment["explanation"]] == [True] * 4
    assert enrollment["account_key"] == "acme"


async def test_duplicate_and_late_signals(harness: Harness) -> None:
    await harness.person("ann", "acme")
    assert await harness.signal("job_change", "acme", "ann", signal_id="a")
    assert not await harness.signal("job_change", "acme", "ann", signal_id="a")
    late = START - timedelta(days=3)
    assert await harness.signal("job_change", "acme", "ann", signal_id="b", at=late)

    fact = harness.state.people.get("ann")["signals"]["job_change"]["o"]
    # Newest first: the late one does not replace the last occurrence.
    assert [entry[0] for entry in fact] == ["a", "b"]


async def test_each_predicate_kind(harness: Harness) -> None:
    cases = {
        "company": {"kind": "company_signal", "types": ["hiring_surge"]},
        "person": {"kind": "person_signal", "types": ["promotion"], "within_days": 5},
        "noemail": {"kind": "has_email", "value": False},
        "empty": {"kind": "last_activity", "condition": "empty"},
        "within": {"kind": "last_activity", "condition": "within", "days": 10},
        "eq": {
            "kind": "compare",
            "object": "person",
            "field": "title",
            "op": "eq",
            "value": "cto",
        },
        "ne": {
            "kind": "compare",
            "object": "person",
            "field": "title",
            "op": "ne",
            "value": "CTO",
        },
        "in": {
            "kind": "compare",
            "object": "account",
            "field": "industry",
            "op": "in",
            "value": ["retail", "banking"],
        },
        "contains": {
            "kind": "compare",
            "object": "person",
            "field": "title",
            "op": "contains",
            "value": "vp",
        },
        "gt": {
            "kind": "compare",
            "object": "account",
            "field": "employees",
            "op": "gt",
            "value": 500,
        },
        "lt": {
            "kind": "compare",
            "object": "account",
            "field": "employees",
            "op": "lt",
            "value": 500,
        },
        "exists": {
            "kind": "compare",
            "object": "person",
            "field": "phone",
            "op": "exists",
        },
        "not": {"kind": "not", "filter": {"kind": "has_email", "value": True}},
        "any": {
            "kind": "any",
            "of": [
                {
                    "kind": "compare",
                    "object": "person",
                    "field": "title",
                    "op": "eq",
                    "value": "CEO",
                },
                {"kind": "person_signal", "types": ["new_hire"]},
            ],
        },
    }
    for name, node in cases.items():
        await harness.activate(node, workflow_id=name)
    harness.definitions.saved["member-base"] = harness.definitions.saved["eq-audience"]
    await harness.activate(
        {"kind": "in_audience", "audience_id": "member-base"}, workflow_id="member"
    )

    await harness.account("bank", industry="Banking", employees=900)
    await harness.account("shop", industry="Retail", employees=20)
    await harness.person(
        "p1", "bank", title="CTO", phone="123", last_activity=START - timedelta(days=3)
    )
    await harness.person("p2", "shop", email=None, title="VP Marketing")
    await harness.signal("hiring_surge", "shop")
    await harness.signal("promotion", "shop", "p2", at=START - timedelta(days=6))
    await harness.signal("new_hire", "shop", "p2")

    expected = {
        "company": ["p2"],
        "person": [],  # promoted six days ago: outside five days
        "noemail": ["p2"],
        "empty": ["p2"],
        "within": ["p1"],
        "eq": ["p1"],
        "ne": ["p2"],
        "in": ["p1", "p2"],
        "contains": ["p2"],
        "gt": ["p1"],
        "lt": ["p2"],
        "exists": ["p1"],
        "not": ["p2"],
        "any": ["p2"],
        "member": ["p1"],
    }
    got = {name: sorted(harness.outbox.people(name)) for name in expected}
    assert got == expected


async def test_time_passing_flips_a_match_without_an_event(harness: Harness) -> None:
    await harness.activate(
        {
            "kind": "all",
            "of": [
                {"kind": "person_signal", "types": ["job_change"]},
                {"kind": "last_activity", "condition": "before", "days": 30},
            ],
        }
    )
    await harness.person("ann", "acme", last_activity=START - timedelta(days=29))
    await harness.signal("job_change", "acme", "ann")
    assert harness.outbox.people() == []

    # A day later, at 08:00, the last activity is 30 days old. The timer index
    # holds ann for that minute; a tick just before does nothing.
    await harness.tick(DAY - timedelta(minutes=2))
    assert harness.outbox.people() == []
    await harness.tick(timedelta(minutes=2))
    assert harness.outbox.people() == ["ann"]


async def test_signal_window_closing_ends_a_pending_match(harness: Harness) -> None:
    await harness.activate(
        {"kind": "person_signal", "types": ["new_hire"], "within_days": 2},
        schedule={"kind": "weekly", "day": "fri", "at": "09:00"},
    )
    await harness.person("ann", "acme")
    await harness.signal("new_hire", "acme", "ann")
    assert harness.matcher.figures("wf")["pending"] == 1

    # Wednesday 08:00 the window closes; Friday's run finds nobody.
    await harness.tick(2 * DAY)
    assert harness.matcher.figures("wf")["pending"] == 0
    assert harness.matcher.figures("wf")["expired"] == 1
    await harness.tick(3 * DAY)
    assert harness.outbox.people() == []


async def test_daily_schedule_on_weekdays_in_a_time_zone(harness: Harness) -> None:
    await harness.activate(
        {"kind": "person_signal", "types": ["promotion"]},
        schedule={
            "kind": "daily",
            "at": "09:00",
            "timezone": "America/New_York",
            "weekdays": ["mon", "wed"],
        },
    )
    # Monday 2026-03-02 08:00 UTC is 03:00 in New York: today's 09:00 NY run
    # (14:00 UTC) is the next one.
    await harness.person("ann", "acme")
    await harness.signal("promotion", "acme", "ann")
    await harness.tick(timedelta(hours=5, minutes=59))
    assert harness.outbox.people() == []
    await harness.tick(timedelta(minutes=1))
    assert harness.outbox.people() == ["ann"]
    assert harness.matcher.figures("wf")["last_run_enrolled"] == 1

    # Tuesday is not a run day; Wednesday 09:00 NY is.
    await harness.person("bob", "acme")
    await harness.signal("promotion", "acme", "bob")
    harness.clock.set(datetime(2026, 3, 3, 14, 0, tzinfo=UTC))
    await harness.tick()
    assert harness.outbox.people() == ["ann"]
    harness.clock.set(datetime(2026, 3, 4, 14, 0, tzinfo=UTC))
    await harness.tick()
    assert harness.outbox.people() == ["ann", "bob"]


async def test_daily_schedule_across_the_spring_forward(harness: Harness) -> None:
    # New York moves from UTC-5 to UTC-4 on Sunday 2026-03-08.
    harness.clock.set(datetime(2026, 3, 7, 15, 0, tzinfo=UTC))  # Sat 10:00 EST
    await harness.activate(
        {"kind": "person_signal", "types": ["promotion"]},
        schedule={"kind": "daily", "at": "09:00", "timezone": "America/New_York"},
    )
    await harness.person("ann", "acme")
    await harness.signal("promotion", "acme", "ann")
    # Sunday 09:00 EDT is 13:00 UTC, not 14:00.
    harness.clock.set(datetime(2026, 3, 8, 12, 59, tzinfo=UTC))
    await harness.tick()
    assert harness.outbox.people() == []
    harness.clock.set(datetime(2026, 3, 8, 13, 0, tzinfo=UTC))
    await harness.tick()
    assert harness.outbox.people() == ["ann"]


async def test_weekly_schedule(harness: Harness) -> None:
    await harness.activate(
        {"kind": "person_signal", "types": ["promotion"]},
        schedule={
            "kind": "weekly",
            "day": "thu",
            "at": "17:30",
            "timezone": "Europe/Berlin",
        },
    )
    await harness.person("ann", "acme")
    await harness.signal("promotion", "acme", "ann")
    # Thursday 2026-03-05 17:30 CET = 16:30 UTC.
    harness.clock.set(datetime(2026, 3, 5, 16, 29, tzinfo=UTC))
    await harness.tick()
    assert harness.outbox.people() == []
    harness.clock.set(datetime(2026, 3, 5, 16, 30, tzinfo=UTC))
    await harness.tick()
    assert harness.outbox.people() == ["ann"]


async def test_monthly_schedule_runs_on_the_last_day_of_short_months(
    harness: Harness,
) -> None:
    harness.clock.set(datetime(2026, 4, 2, 8, 0, tzinfo=UTC))
    await harness.activate(
        {"kind": "person_signal", "types": ["promotion"]},
        schedule={"kind": "monthly", "day": 31, "at": "06:00", "timezone": "UTC"},
    )
    harness.clock.set(datetime(2026, 4, 27, 8, 0, tzinfo=UTC))
    await harness.person("ann", "acme")
    await harness.signal("promotion", "acme", "ann")
    # April has 30 days: the run is on the 30th.
    harness.clock.set(datetime(2026, 4, 29, 6, 0, tzinfo=UTC))
    await harness.tick()
    assert harness.outbox.people() == []
    harness.clock.set(datetime(2026, 4, 30, 6, 0, tzinfo=UTC))
    await harness.tick()
    assert harness.outbox.people() == ["ann"]


async def test_account_cap_holds_the_rest_for_the_next_run(harness: Harness) -> None:
    await harness.activate(
        {"kind": "company_signal", "types": ["funding"]},
        schedule={"kind": "daily", "at": "09:00"},
        limits={"max_per_account": 2},
    )
    for key in ("a1", "a2", "a3"):
        await harness.person(key, "acme")
    await harness.person("b1", "beta")
    await harness.signal("funding", "acme")
    await harness.signal("funding", "beta")

    await harness.tick(timedelta(hours=1))  # 09:00: the run
    assert sorted(harness.outbox.people()) == ["a1", "a2", "b1"]
    figures = harness.matcher.figures("wf")
    assert (figures["held_account"], figures["pending"]) == (1, 1)

    await harness.tick(DAY)  # the next run takes the one held back
    assert sorted(harness.outbox.people()) == ["a1", "a2", "a3", "b1"]
    assert harness.matcher.figures("wf")["pending"] == 0


async def test_rep_cap_is_per_rep_and_run(harness: Harness) -> None:
    await harness.activate(
        {"kind": "person_signal", "types": ["job_change"]},
        limits={"max_per_rep": 1},
    )
    await harness.person("r1", "acme", owner="rick")
    await harness.person("r2", "beta", owner="rick")
    await harness.person("s1", "gamma", owner="sue")
    for key, account in (("r1", "acme"), ("r2", "beta"), ("s1", "gamma")):
        await harness.signal("job_change", account, key)
    # Realtime: one per rep per day; rick's second waits for tomorrow.
    assert harness.outbox.people() == ["r1", "s1"]
    assert harness.matcher.figures("wf")["held_rep"] == 1

    await harness.tick(DAY)
    assert harness.outbox.people() == ["r1", "s1", "r2"]


async def test_rep_cap_is_shared_across_partitions(harness: Harness) -> None:
    await harness.activate(
        {"kind": "person_signal", "types": ["job_change"]},
        limits={"max_per_rep": 1},
    )
    # A second partition, with its own state, counting against the same Redis.
    other = harness.new_matcher()
    other.partition = 1
    other.state = type(harness.state).in_memory()
    await other.on_control(
        {
            "command_id": "c-other",
            "kind": "ACTIVATE",
            "workflow_id": "wf",
            "workflow_version": 1,
            "execution_timing": "ALL_CURRENT",
            "limit": None,
            "issued_at": START,
            "partition_count": 2,
        }
    )
    await harness.person("r1", "acme", owner="rick")
    await harness.signal("job_change", "acme", "r1")
    matcher = harness.matcher
    harness.matcher = other
    await harness.person("r2", "beta", owner="rick")
    await harness.signal("job_change", "beta", "r2")
    harness.matcher = matcher
    assert harness.outbox.people() == ["r1"]


async def test_pending_entries_expire_after_their_age(redis_client) -> None:  # noqa: ANN001
    harness = Harness(redis_client, pending_max_age_days=2)
    await harness.activate(
        {"kind": "person_signal", "types": ["promotion"]},
        schedule={"kind": "weekly", "day": "fri", "at": "09:00"},
    )
    await harness.person("ann", "acme")
    await harness.signal("promotion", "acme", "ann")
    await harness.tick(5 * DAY)  # past Friday's run: three days pending
    assert harness.outbox.people() == []
    figures = harness.matcher.figures("wf")
    assert (figures["pending"], figures["expired"]) == (0, 1)


async def test_all_current_enrolls_everyone_matching_at_activation(
    harness: Harness,
) -> None:
    await harness.person("ann", "acme", title="CEO")
    await harness.person("bob", "acme", title="Intern")
    await harness.activate(
        {
            "kind": "compare",
            "object": "person",
            "field": "title",
            "op": "eq",
            "value": "ceo",
        },
        timing="ALL_CURRENT",
    )
    assert harness.outbox.people() == ["ann"]


async def test_future_only_enrolls_only_matches_that_begin_later(
    harness: Harness,
) -> None:
    await harness.person("ann", "acme", title="CEO")
    await harness.person("bob", "acme", title="Intern")
    await harness.activate(
        {
            "kind": "compare",
            "object": "person",
            "field": "title",
            "op": "eq",
            "value": "ceo",
        },
        timing="FUTURE_ONLY",
    )
    assert harness.outbox.people() == []
    await harness.person("bob", "acme", title="CEO")  # bob's match begins now
    await harness.person("ann", "acme", title="CEO", city="Oslo")  # same match
    assert harness.outbox.people() == ["bob"]
    # ann stops matching, then matches again: a new match.
    await harness.person("ann", "acme", title="CFO")
    await harness.person("ann", "acme", title="CEO")
    assert harness.outbox.people() == ["bob", "ann"]


async def test_never_reenrolls_by_default(harness: Harness) -> None:
    await harness.activate({"kind": "person_signal", "types": ["job_change"]})
    await harness.person("ann", "acme")
    await harness.signal("job_change", "acme", "ann")
    await harness.person("ann", "acme", email=None)
    await harness.signal("job_change", "acme", "ann")
    assert harness.outbox.people() == ["ann"]


async def test_reenrollment_after_days_needs_a_new_match_and_the_days(
    harness: Harness,
) -> None:
    await harness.activate(
        {
            "kind": "all",
            "of": [
                {"kind": "person_signal", "types": ["job_change"]},
                {"kind": "has_email", "value": True},
            ],
        },
        reenrollment={"after_days": 10},
    )
    await harness.person("ann", "acme")
    await harness.signal("job_change", "acme", "ann")
    assert harness.outbox.people() == ["ann"]

    # Still the same match ten days on: no second enrollment.
    await harness.tick(10 * DAY)
    await harness.signal("job_change", "acme", "ann")
    assert harness.outbox.people() == ["ann"]

    # The match ends and begins again on day 12: a new match, days passed.
    await harness.person("ann", "acme", email=None)
    await harness.tick(2 * DAY)
    await harness.person("ann", "acme", email="ann@acme.io")
    assert harness.outbox.people() == ["ann", "ann"]
    runs = [e["run_id"] for e in harness.outbox.enrollments]
    assert len(set(runs)) == 2


async def test_reenrollment_waits_for_the_days_then_enrolls_on_its_own(
    harness: Harness,
) -> None:
    await harness.activate(
        {
            "kind": "all",
            "of": [
                {"kind": "person_signal", "types": ["job_change"]},
                {"kind": "has_email", "value": True},
            ],
        },
        reenrollment={"after_days": 10},
    )
    await harness.person("ann", "acme")
    await harness.signal("job_change", "acme", "ann")
    await harness.tick(DAY)
    await harness.person("ann", "acme", email=None)
    await harness.person("ann", "acme", email="ann@acme.io")  # new match, day 1
    assert harness.outbox.people() == ["ann"]
    await harness.tick(9 * DAY)  # day 10: allowed now, with no further event
    assert harness.outbox.people() == ["ann", "ann"]


async def test_restart_on_the_same_state_does_not_enroll_twice(
    harness: Harness,
) -> None:
    await harness.activate({"kind": "person_signal", "types": ["job_change"]})
    await harness.person("ann", "acme")
    await harness.signal("job_change", "acme", "ann", signal_id="j1")
    harness.matcher.release_all()
    harness.matcher = harness.new_matcher()
    await harness.matcher.load()
    # The same signal delivered again after the restart.
    await harness.signal("job_change", "acme", "ann", signal_id="j1")
    assert harness.outbox.people() == ["ann"]


async def test_pause_stops_enrolling(harness: Harness) -> None:
    await harness.activate({"kind": "person_signal", "types": ["job_change"]})
    await harness.control("PAUSE")
    await harness.person("ann", "acme")
    await harness.signal("job_change", "acme", "ann")
    assert harness.outbox.people() == []


async def test_preview_counts_and_gives_examples(harness: Harness) -> None:
    for index in range(25):
        await harness.person(f"p{index:02d}", "acme", title="CEO")
    await harness.person("x", "acme", title="Intern")
    harness.save(
        {
            "kind": "compare",
            "object": "person",
            "field": "title",
            "op": "eq",
            "value": "ceo",
        }
    )
    command_id = await harness.control("PREVIEW")
    [status] = harness.outbox.statuses
    assert status["preview"]["command_id"] == command_id
    assert status["preview"]["matching"] == 25
    assert len(status["preview"]["examples"]) == 20
    assert harness.outbox.enrollments == []


async def test_test_run_takes_at_most_the_limit_and_leaves_no_trace(
    harness: Harness,
) -> None:
    for index in range(5):
        await harness.person(f"p{index}", "acme", title="CEO")
    harness.save(
        {
            "kind": "compare",
            "object": "person",
            "field": "title",
            "op": "eq",
            "value": "ceo",
        }
    )
    command_id = await harness.control("TEST_RUN", limit=3)
    await harness.control("DRY_RUN", limit=10)
    assert len(harness.outbox.people(mode="TEST")) == 3
    assert len(harness.outbox.people(mode="DRY_RUN")) == 5
    assert {
        e["command_id"] for e in harness.outbox.enrollments if e["mode"] == "TEST"
    } == {command_id}
    # Then activating enrolls everyone live: the trial did not count.
    await harness.control("ACTIVATE", timing="ALL_CURRENT")
    assert len(harness.outbox.people()) == 5


async def test_status_reports_periodically(harness: Harness) -> None:
    await harness.activate(
        {"kind": "person_signal", "types": ["promotion"]},
        schedule={"kind": "daily", "at": "09:00"},
    )
    await harness.person("ann", "acme")
    await harness.signal("promotion", "acme", "ann")
    await harness.tick()
    [status] = harness.outbox.statuses
    assert (status["workflow_id"], status["pending"]) == ("wf", 1)


async def test_an_enrollment_found_after_a_crash_settles_its_pending_match(
    harness: Harness,
) -> None:
    await harness.activate(
        {"kind": "person_signal", "types": ["promotion"]},
        schedule={"kind": "daily", "at": "09:00", "timezone": "UTC"},
        limits={"max_per_account": 1},
    )
    for key in ("ann", "bob"):
        await harness.person(key, "acme")
        await harness.signal("promotion", "acme", key)
    assert harness.matcher.figures("wf")["pending"] == 2

    # The 09:00 run enrolls Ann (the account cap holds Bob back), and the
    # replica dies after the broker took the enrollment, before its tables
    # were written out: they come back as they were before the run.
    written = {
        name: copy.deepcopy(namespace.items)
        for name, namespace in vars(harness.state).items()
    }
    await harness.tick(timedelta(hours=1))
    [sent] = harness.outbox.enrollments
    for name, items in written.items():
        getattr(harness.state, name).items = items
    harness.matcher.release_all()
    harness.matcher = harness.new_matcher()
    await harness.matcher.load()
    codec = Codec.load()
    found = codec.decode("enrollment", codec.encode("enrollment", sent))
    harness.matcher.recover([found])

    figures = harness.matcher.figures("wf")
    assert (figures["pending"], figures["enrolled_total"]) == (1, 1)
    assert harness.state.pending.get("wf|ann") is None
    # The run's tick comes again: Ann is not enrolled twice, and the account's
    # count for the run still holds Bob back.
    await harness.tick()
    assert harness.outbox.people() == ["ann"]
    assert harness.matcher.figures("wf")["pending"] == 1
