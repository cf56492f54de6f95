"""The report of a test run does not depend on the order or repetition of events."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from services.api.reports import fold_report
from services.api.testruns import TrialCommand, TrialEvent

COMMAND = TrialCommand(
    command_id="cmd_" + "a" * 32,
    workflow_id="wf_1",
    workflow_version=1,
    mode="TEST",
    limit=10,
    issued_at=datetime(2024, 6, 3, tzinfo=UTC),
)


def step(run_id: str, step_id: str, attempt: int, status: str, second: int) -> dict:
    return {
        "run_id": run_id,
        "person_key": f"person-{run_id}",
        "account_key": "acme",
        "enrolled_at": "2024-06-03T09:00:00+00:00",
        "step_id": step_id,
        "action_type": "crm-upsert",
        "attempt": attempt,
        "status": status,
        "retryable": status == "ERROR",
        "error": "timeout" if status == "ERROR" else None,
        "outputs": {},
        "finished_at": f"2024-06-03T09:00:{second:02d}+00:00",
    }


EVENTS = [
    TrialEvent("1-0", "enrolled", {"run_id": "r1", "person_key": "person-r1",
                                   "account_key": "acme",
                                   "enrolled_at": "2024-06-03T09:00:00+00:00"}),
    TrialEvent("2-0", "step", step("r1", "0", 1, "ERROR", 5)),
    TrialEvent("3-0", "step", step("r1", "0", 2, "OK", 9)),
    TrialEvent("4-0", "step", step("r1", "1", 1, "OK", 12)),
    TrialEvent("5-0", "run", {"run_id": "r1", "person_key": "person-r1",
                              "account_key": "acme", "status": "OK",
                              "failed_step": None, "error": None,
                              "ended_at": "2024-06-03T09:01:00+00:00"}),
    TrialEvent("6-0", "step", step("r2", "0", 1, "OK", 3)),
]  # fmt: skip


def test_the_latest_attempt_of_each_step_is_reported_in_finishing_order() -> None:
    report = fold_report(COMMAND, EVENTS, workflow=None)

    first = next(p for p in report.prospects if p.run_id == "r1")
    assert first.status == "ok"
    assert [(s.step_id, s.attempt, s.status) for s in first.steps] == [
        ("0", 2, "OK"),
        ("1", 1, "OK"),
    ]
    assert (report.enrolled, report.finished, report.ok, report.errors) == (2, 1, 1, 0)


def test_order_and_duplicates_do_not_change_the_report() -> None:
    expected = fold_report(COMMAND, EVENTS, workflow=None)
    shuffler = random.Random(7)

    for _ in range(20):
        events = EVENTS + shuffler.sample(EVENTS, 3)
        shuffler.shuffle(events)
        report = fold_report(COMMAND, events, workflow=None)
        by_run = {p.run_id: p for p in report.prospects}
        assert by_run == {p.run_id: p for p in expected.prospects}
