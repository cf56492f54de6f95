"""Create, read, update and delete audiences and workflows, with their history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response, status

from services.api.auth import require_token
from services.api.control import ControlKind, new_command
from services.api.editor import DefinitionEditor
from services.api.payloads import Deleted, VersionInfo
from services.api.problems import error_responses
from services.api.routes.bodies import json_body, json_request_body
from services.api.runtime import ApiRuntime, runtime
from signalflow.definitions import DefinitionKind
from signalflow.workflow import Audience, Workflow

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$"
AudienceIdPath = Annotated[
    str,
    Path(
        pattern=ID_PATTERN,
        description="The id of the audience.",
        examples=["aud_funded_accounts"],
    ),
]
WorkflowIdPath = Annotated[
    str,
    Path(
        pattern=ID_PATTERN,
        description="The id of the workflow.",
        examples=["wf_funding_follow_up"],
    ),
]
VersionPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="A saved version.")]
Body = Annotated[Any, Depends(json_body)]
Runtime = Annotated[ApiRuntime, Depends(runtime)]

audiences = APIRouter(
    prefix="/audiences", tags=["audiences"], dependencies=[Depends(require_token)]
)
workflows = APIRouter(
    prefix="/workflows", tags=["workflows"], dependencies=[Depends(require_token)]
)

AUDIENCE_BODY = json_request_body(
    "AudienceSubmission",
    "An audience: a name and a filter. The id is optional on create (one is"
    " generated); the version is assigned by the server.",
)
WORKFLOW_BODY = json_request_body(
    "WorkflowSubmission",
    "A workflow: its audience, schedule, limits, re-enrollment and steps. The id is"
    " optional on create; version and status are decided by the server (status"
    " changes through activate and pause).",
)


def editor(request: Request) -> DefinitionEditor:
    return DefinitionEditor(runtime(request).definitions)


Editor = Annotated[DefinitionEditor, Depends(editor)]


# --- audiences -----------------------------------------------------------------


@audiences.get(
    "",
    response_model=list[Audience],
    responses=error_responses(401, 422),
    summary="List audiences",
)
async def list_audiences(edit: Editor) -> list[Audience]:
    """The latest version of every audience not deleted, by id."""
    return edit.audiences()


@audiences.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Audience,
    responses=error_responses(401, 409, 422, 503),
    openapi_extra=AUDIENCE_BODY,
    summary="Create an audience",
)
async def create_audience(edit: Editor, body: Body, response: Response) -> Audience:
    """Validate and save a new audience as version 1."""
    created = await edit.create_audience(body)
    response.headers["Location"] = f"/audiences/{created.id}"
    return created


@audiences.get(
    "/{audience_id}",
    response_model=Audience,
    responses=error_responses(401, 404, 422),
    summary="Get an audience",
)
async def get_audience(edit: Editor, audience_id: AudienceIdPath) -> Audience:
    """The latest version of an audience."""
    return edit.audience(audience_id)


@audiences.put(
    "/{audience_id}",
    response_model=Audience,
    responses=error_responses(401, 404, 409, 422, 503),
    openapi_extra=AUDIENCE_BODY,
    summary="Update an audience",
)
async def update_audience(
    edit: Editor, audience_id: AudienceIdPath, body: Body
) -> Audience:
    """Validate and save the next version of an audience."""
    return await edit.update_audience(audience_id, body)


@audiences.delete(
    "/{audience_id}",
    response_model=Deleted,
    responses=error_responses(401, 404, 409, 422, 503),
    summary="Delete an audience",
)
async def delete_audience(edit: Editor, audience_id: AudienceIdPath) -> Deleted:
    """Delete an audience that no active workflow and no other audience uses
    (409 otherwise). Drafts naming it cannot be activated until they name another.

    The deletion is a new version; earlier versions stay readable.
    """
    return await edit.delete_audience(audience_id)


@audiences.get(
    "/{audience_id}/versions",
    response_model=list[VersionInfo],
    responses=error_responses(401, 404, 422),
    summary="Version history of an audience",
)
async def audience_history(
    edit: Editor, audience_id: AudienceIdPath
) -> list[VersionInfo]:
    """Every saved version, oldest first, the deletion included."""
    return edit.history(audience_id, DefinitionKind.AUDIENCE)


@audiences.get(
    "/{audience_id}/versions/{version}",
    response_model=Audience,
    responses=error_responses(401, 404, 422),
    summary="Get one version of an audience",
)
async def audience_version(
    edit: Editor, audience_id: AudienceIdPath, version: VersionPath
) -> Audience:
    """One saved version, also after later versions or a deletion."""
    return edit.audience(audience_id, version)


# --- workflows -----------------------------------------------------------------


@workflows.get(
    "",
    response_model=list[Workflow],
    responses=error_responses(401, 422),
    summary="List workflows",
)
async def list_workflows(edit: Editor) -> list[Workflow]:
    """The latest version of every workflow not deleted, by id."""
    return edit.workflows()


@workflows.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Workflow,
    responses=error_responses(401, 409, 422, 503),
    openapi_extra=WORKFLOW_BODY,
    summary="Create a workflow",
)
async def create_workflow(edit: Editor, body: Body, response: Response) -> Workflow:
    """Validate and save a new workflow as version 1, in draft."""
    created = await edit.create_workflow(body)
    response.headers["Location"] = f"/workflows/{created.id}"
    return created


@workflows.get(
    "/{workflow_id}",
    response_model=Workflow,
    responses=error_responses(401, 404, 422),
    summary="Get a workflow",
)
async def get_workflow(edit: Editor, workflow_id: WorkflowIdPath) -> Workflow:
    """The latest version of a workflow."""
    return edit.workflow(workflow_id)


@workflows.put(
    "/{workflow_id}",
    response_model=Workflow,
    responses=error_responses(401, 404, 409, 422, 503),
    openapi_extra=WORKFLOW_BODY,
    summary="Update a workflow",
)
async def update_workflow(
    edit: Editor, workflow_id: WorkflowIdPath, body: Body
) -> Workflow:
    """Validate and save the next version; an active workflow stays active and
    the matcher picks the new version up. Runs already started finish on the
    version they started with."""
    return await edit.update_workflow(workflow_id, body)


@workflows.delete(
    "/{workflow_id}",
    response_model=Deleted,
    responses=error_responses(401, 404, 409, 422, 503),
    summary="Delete a workflow",
)
async def delete_workflow(
    edit: Editor, workflow_id: WorkflowIdPath, state: Runtime
) -> Deleted:
    """Delete a workflow; an active one is also paused on every matcher partition.

    The deletion is a new version; earlier versions stay readable.
    """
    deleted, last = await edit.delete_workflow(workflow_id)
    if last.status == "active":
        await state.control.send(
            new_command(
                ControlKind.PAUSE,
                workflow_id=workflow_id,
                workflow_version=deleted.version,
            )
        )
    return deleted


@workflows.get(
    "/{workflow_id}/versions",
    response_model=list[VersionInfo],
    responses=error_responses(401, 404, 422),
    summary="Version history of a workflow",
)
async def workflow_history(
    edit: Editor, workflow_id: WorkflowIdPath
) -> list[VersionInfo]:
    """Every saved version with its status, oldest first, the deletion included."""
    return edit.history(workflow_id, DefinitionKind.WORKFLOW)


@workflows.get(
    "/{workflow_id}/versions/{version}",
    response_model=Workflow,
    responses=error_responses(401, 404, 422),
    summary="Get one version of a workflow",
)
async def workflow_version(
    edit: Editor, workflow_id: WorkflowIdPath, version: VersionPath
) -> Workflow:
    """One saved version, also after later versions or a deletion."""
    return edit.workflow(workflow_id, version)
