"""Monitoring figures of a workflow, read from what the metrics service keeps."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from services.api.auth import require_token
from services.api.payloads import WorkflowMetrics
from services.api.problems import error_responses
from services.api.routes.definitions import Editor, Runtime, WorkflowIdPath

monitoring = APIRouter(
    prefix="/workflows", tags=["monitoring"], dependencies=[Depends(require_token)]
)


@monitoring.get(
    "/{workflow_id}/metrics",
    response_model=WorkflowMetrics,
    responses=error_responses(401, 404, 422),
    summary="Monitoring figures of a workflow",
)
async def workflow_metrics(
    edit: Editor,
    state: Runtime,
    workflow_id: WorkflowIdPath,
    mode: Annotated[
        Literal["LIVE", "TEST", "DRY_RUN"],
        Query(description="Live runs, or the test or dry runs kept apart from them."),
    ] = "LIVE",
) -> WorkflowMetrics:
    """Pending prospects, runs done over time, the last run with its OK and error
    counts, per-step counts and recent error samples."""
    edit.workflow(workflow_id)
    figures = await state.metrics.figures(workflow_id, mode=mode)
    return WorkflowMetrics.model_validate(figures.as_json())
