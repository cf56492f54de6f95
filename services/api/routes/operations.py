"""Running workflows: activate, pause, preview, test runs and dry runs.

Each of these sends a command on `control` (one copy per partition). Activate and
pause also save a new version with the new status, so the history shows when a
workflow ran; test and dry runs keep their results in Redis under the command id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request, status
from fastapi.responses import StreamingResponse

from services.api.auth import require_token
from services.api.control import (
    ControlCommand,
    ControlKind,
    ExecutionTiming,
    new_command,
)
from services.api.editor import DefinitionEditor
from services.api.payloads import (
    ActivateRequest,
    Mode,
    PreviewResult,
    RunReport,
    RunRequest,
    RunStarted,
)
from services.api.problems import Conflict, GatewayTimeout, NotFound, error_responses
from services.api.reports import fold_report
from services.api.routes.definitions import Editor, Runtime, WorkflowIdPath
from services.api.runtime import ApiRuntime
from services.api.testruns import TrialCommand, TrialEvent
from signalflow.workflow import Workflow

log = logging.getLogger(__name__)

PREVIEW_EXAMPLES = 20
STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")

CommandPath = Annotated[
    str,
    Path(
        pattern=r"^cmd_[0-9a-f]{32}$",
        description="The command id a test or dry run answered with.",
        examples=["cmd_5d1c0f0e8a7b4c39a1b2c3d4e5f60718"],
    ),
]

operations = APIRouter(
    prefix="/workflows", tags=["runs"], dependencies=[Depends(require_token)]
)


@operations.post(
    "/{workflow_id}/activate",
    response_model=Workflow,
    responses=error_responses(400, 401, 404, 409, 422, 503),
    summary="Activate a workflow",
)
async def activate(
    edit: Editor, state: Runtime, workflow_id: WorkflowIdPath, body: ActivateRequest
) -> Workflow:
    """Save a version with status active and tell every matcher partition.

    The whole workflow is checked again first (its audience must still exist).
    Activating an active workflow with the same timing sends the command again
    without a new version, so a failed attempt can simply be repeated.
    """
    current = edit.workflow(workflow_id)
    if current.status == "active" and current.timing != body.execution_timing:
        raise Conflict(
            f"Workflow {workflow_id!r} is already active with timing"
            f" {current.timing!r}; pause it before activating it differently."
        )
    workflow = current
    if current.status != "active":
        workflow = await edit.change_status(
            workflow_id, "active", timing=body.execution_timing
        )
    await state.control.send(
        new_command(
            ControlKind.ACTIVATE,
            workflow_id=workflow_id,
            workflow_version=_version(workflow),
            execution_timing=ExecutionTiming(body.execution_timing.upper()),
        )
    )
    return workflow


@operations.post(
    "/{workflow_id}/pause",
    response_model=Workflow,
    responses=error_responses(401, 404, 409, 422, 503),
    summary="Pause a workflow",
)
async def pause(edit: Editor, state: Runtime, workflow_id: WorkflowIdPath) -> Workflow:
    """Save a version with status paused and tell every matcher partition.

    Pausing a paused workflow sends the command again without a new version.
    """
    current = edit.workflow(workflow_id)
    if current.status == "draft":
        raise Conflict(f"Workflow {workflow_id!r} is a draft; it never ran.")
    workflow = current
    if current.status == "active":
        workflow = await edit.change_status(workflow_id, "paused")
    await state.control.send(
        new_command(
            ControlKind.PAUSE,
            workflow_id=workflow_id,
            workflow_version=_version(workflow),
        )
    )
    return workflow


@operations.post(
    "/{workflow_id}/preview",
    response_model=PreviewResult,
    responses=error_responses(401, 404, 422, 503, 504),
    summary="Preview who matches",
)
async def preview(
    edit: Editor, state: Runtime, workflow_id: WorkflowIdPath
) -> PreviewResult:
    """Ask every matcher partition how many prospects match the workflow's
    audience now, with up to 20 examples; 504 when a partition does not answer
    within the configured time."""
    workflow = edit.workflow(workflow_id)
    edit.check_runnable(workflow)
    command = new_command(
        ControlKind.PREVIEW,
        workflow_id=workflow_id,
        workflow_version=_version(workflow),
        limit=PREVIEW_EXAMPLES,
    )
    expected = state.control.partition_count
    waiter = state.previews.expect(command.command_id, expected)
    timeout_s = state.api_settings.preview_timeout_s
    try:
        await state.control.send(command)
        await asyncio.wait_for(waiter.complete.wait(), timeout_s)
    except TimeoutError:
        raise GatewayTimeout(
            f"Only {len(waiter.answers)} of {expected} matcher partitions answered"
            f" the preview within {timeout_s:g}s; is the matcher running?"
        ) from None
    finally:
        state.previews.forget(command.command_id)
    return PreviewResult(
        command_id=command.command_id,
        workflow_id=workflow_id,
        matching=waiter.matching,
        examples=waiter.examples(),
        partitions=len(waiter.answers),
    )


@operations.post(
    "/{workflow_id}/test-runs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RunStarted,
    responses=error_responses(400, 401, 404, 422, 503),
    summary="Test a workflow on a sample",
)
async def start_test_run(
    edit: Editor,
    state: Runtime,
    workflow_id: WorkflowIdPath,
    body: RunRequest | None = None,
) -> RunStarted:
    """Run the workflow for real on at most `limit` prospects (default 10), in
    TEST mode: results never count as live enrollments."""
    return await _start_trial(
        edit, state, workflow_id, body or RunRequest(), ControlKind.TEST_RUN
    )


@operations.post(
    "/{workflow_id}/dry-runs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RunStarted,
    responses=error_responses(400, 401, 404, 422, 503),
    summary="Dry-run a workflow on a sample",
)
async def start_dry_run(
    edit: Editor,
    state: Runtime,
    workflow_id: WorkflowIdPath,
    body: RunRequest | None = None,
) -> RunStarted:
    """Run the workflow on at most `limit` prospects without any side effect:
    each step's outputs show what it would have sent."""
    return await _start_trial(
        edit, state, workflow_id, body or RunRequest(), ControlKind.DRY_RUN
    )


@operations.get(
    "/{workflow_id}/test-runs/{command_id}",
    response_model=RunReport,
    responses=error_responses(401, 404, 422),
    summary="Results of a test or dry run",
)
async def run_report(
    edit: Editor, state: Runtime, workflow_id: WorkflowIdPath, command_id: CommandPath
) -> RunReport:
    """Each prospect's result per step, as far as the steps have finished."""
    command = await _trial(state, workflow_id, command_id)
    events = await state.results.events(command_id)
    version = state.definitions.workflow(workflow_id, command.workflow_version)
    return fold_report(command, events, version)


@operations.get(
    "/{workflow_id}/test-runs/{command_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-sent events: `enrolled`, `step` and `run`, each"
            " with a JSON `data` line; resume with the `Last-Event-ID` header.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **error_responses(401, 404, 422),
    },
    summary="Results of a test or dry run as they arrive",
)
async def run_events(
    state: Runtime,
    request: Request,
    workflow_id: WorkflowIdPath,
    command_id: CommandPath,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=64)
    ] = None,
) -> StreamingResponse:
    """Stream the run's events: first those recorded so far (after
    `Last-Event-ID` when given), then each new one as it is recorded. The stream
    stays open until the client disconnects; a comment line keeps it alive."""
    await _trial(state, workflow_id, command_id)
    after = last_event_id if last_event_id and STREAM_ID.match(last_event_id) else "0"
    return StreamingResponse(
        _event_stream(state, request, command_id, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _start_trial(
    edit: DefinitionEditor,
    state: ApiRuntime,
    workflow_id: str,
    body: RunRequest,
    kind: ControlKind,
) -> RunStarted:
    workflow = edit.workflow(workflow_id)
    edit.check_runnable(workflow)
    command = new_command(
        kind,
        workflow_id=workflow_id,
        workflow_version=_version(workflow),
        limit=body.limit,
    )
    mode: Mode = "DRY_RUN" if kind is ControlKind.DRY_RUN else "TEST"
    await state.results.remember_command(_trial_command(command, mode))
    await state.control.send(command)
    results_url = f"/workflows/{workflow_id}/test-runs/{command.command_id}"
    return RunStarted(
        command_id=command.command_id,
        mode=mode,
        workflow_id=workflow_id,
        workflow_version=command.workflow_version,
        limit=body.limit,
        issued_at=command.issued_at,
        results_url=results_url,
        events_url=f"{results_url}/events",
    )


def _trial_command(command: ControlCommand, mode: str) -> TrialCommand:
    return TrialCommand(
        command_id=command.command_id,
        workflow_id=command.workflow_id,
        workflow_version=command.workflow_version,
        mode=mode,
        limit=command.limit or 0,
        issued_at=command.issued_at,
    )


async def _trial(state: ApiRuntime, workflow_id: str, command_id: str) -> TrialCommand:
    command = await state.results.command(command_id)
    if command is None or command.workflow_id != workflow_id:
        raise NotFound(
            f"No test or dry run {command_id!r} of workflow {workflow_id!r} is known"
            " (results are kept for a limited time)."
        )
    return command


async def _event_stream(
    state: ApiRuntime, request: Request, command_id: str, after: str
) -> AsyncIterator[str]:
    keepalive_s = state.api_settings.sse_keepalive_s
    async for event in state.results.follow(
        command_id, after=after, block_s=keepalive_s
    ):
        if await request.is_disconnected():
            return
        yield ": keep-alive\n\n" if event is None else _sse(event)


def _sse(event: TrialEvent) -> str:
    data = json.dumps(event.data, separators=(",", ":"), sort_keys=True)
    return f"id: {event.event_id}\nevent: {event.kind}\ndata: {data}\n\n"


def _version(workflow: Workflow) -> int:
    if workflow.version is None:  # every saved workflow carries its version
        raise NotFound(f"Workflow {workflow.id!r} has no saved version.")
    return workflow.version
