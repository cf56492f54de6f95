"""The records the matcher writes: enrollments and status reports, and run ids.

A run id is derived, never drawn at random: the same workflow, person and match
epoch (the how-many-th enrollment of that person in that workflow) always give
the same id, and so does a test run's command id with a person. An enrollment
sent again after a crash therefore carries the id of the first one, which the
matcher itself recognises (its `emitted` table) and so can the dispatcher and
the actions downstream.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from services.matcher.active import ActiveWorkflow
from services.matcher.state import signal_refs, to_millis
from signalflow.workflow.evaluate import ProspectState, evaluate

Json = dict[str, Any]

RUN_NAMESPACE = uuid.UUID("4f0c35a2-9a52-4d0e-8d3b-6f1d1c2e7a10")


def live_run_id(workflow_id: str, person_key: str, epoch: int) -> str:
    """The run id of a person's `epoch`-th enrollment (from 1) in a workflow."""
    return str(
        uuid.uuid5(RUN_NAMESPACE, f"live\x1f{workflow_id}\x1f{person_key}\x1f{epoch}")
    )


def trial_run_id(command_id: str, person_key: str) -> str:
    """The run id of a person's enrollment by a test or dry-run command."""
    return str(uuid.uuid5(RUN_NAMESPACE, f"trial\x1f{command_id}\x1f{person_key}"))


def enrollment_record(
    active: ActiveWorkflow,
    state: ProspectState,
    *,
    run_id: str,
    mode: str,
    command_id: str | None,
    person_key: str,
    account_key: str,
    now: datetime,
) -> Json:
    """The `enrollment` record of one prospect, with the signals and explanation.

    `mode` is LIVE, TEST or DRY_RUN.
    """
    evaluation = evaluate(
        active.audience.filter, state, now=now, audiences=active.compiled.audiences
    )
    return {
        "run_id": run_id,
        "workflow_id": active.id,
        "workflow_version": active.version,
        "mode": mode,
        "command_id": command_id,
        "person_key": person_key,
        "account_key": account_key,
        "enrolled_at": to_millis(now),
        "person": dict(state.person),
        "account": dict(state.account) if state.account is not None else None,
        "signals": signal_refs(state, active.signal_types),
        "explanation": evaluation.explanation(),
    }


def status_record(
    workflow_id: str,
    partition: int,
    figures: Json,
    *,
    now: datetime,
    preview: Json | None = None,
) -> Json:
    """The `matcher_status` record of one workflow on one partition."""
    return {
        "workflow_id": workflow_id,
        "partition": partition,
        "reported_at": to_millis(now),
        "pending": int(figures.get("pending", 0)),
        "held_by_account_cap": int(figures.get("held_account", 0)),
        "held_by_rep_cap": int(figures.get("held_rep", 0)),
        "expired": int(figures.get("expired", 0)),
        "last_run_at": figures.get("last_run_at"),
        "last_run_enrolled": int(figures.get("last_run_enrolled", 0)),
        "preview": preview,
    }
