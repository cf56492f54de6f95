"""Prebuilt campaigns: list them, and create one's audience and workflow."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, status

from services.api.auth import require_token
from services.api.payloads import Instantiated, PrebuiltSummary
from services.api.problems import NotFound, error_responses
from services.api.routes.definitions import Editor
from signalflow.workflow.prebuilt import CAMPAIGNS, instantiate

catalog = APIRouter(
    prefix="/prebuilt", tags=["prebuilt"], dependencies=[Depends(require_token)]
)

SlugPath = Annotated[
    str,
    Path(
        pattern=r"^[a-z0-9][a-z0-9\-]{0,63}$",
        description="The slug of a prebuilt campaign.",
        examples=["funding-multi-thread"],
    ),
]


@catalog.get(
    "",
    response_model=list[PrebuiltSummary],
    responses=error_responses(401),
    summary="List prebuilt campaigns",
)
async def list_prebuilt() -> list[PrebuiltSummary]:
    """Every ready-made campaign, in library order."""
    return [
        PrebuiltSummary(
            slug=campaign.slug,
            title=campaign.title,
            description=campaign.description,
        )
        for campaign in CAMPAIGNS.values()
    ]


@catalog.post(
    "/{slug}/instantiate",
    status_code=status.HTTP_201_CREATED,
    response_model=Instantiated,
    responses=error_responses(401, 404, 409, 422, 503),
    summary="Create a campaign from a prebuilt one",
)
async def instantiate_prebuilt(edit: Editor, slug: SlugPath) -> Instantiated:
    """Save the campaign's audience and a draft workflow on it, with fresh ids,
    each as version 1; adjust them, then activate the workflow."""
    if slug not in CAMPAIGNS:
        raise NotFound(f"No prebuilt campaign {slug!r}; see GET /prebuilt.")
    audience, workflow = instantiate(slug)
    saved_audience, saved_workflow = await edit.save_instantiated(audience, workflow)
    return Instantiated(audience=saved_audience, workflow=saved_workflow)
