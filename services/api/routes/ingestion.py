"""Signals and profiles over HTTP, for integrators without a Kafka client."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from services.api.auth import require_token
from services.api.payloads import IngestReport
from services.api.problems import (
    InvalidDefinition,
    PayloadTooLarge,
    error_responses,
)
from services.api.routes.bodies import json_body
from services.api.routes.definitions import Runtime
from services.api.runtime import ApiRuntime

ingestion = APIRouter(tags=["ingestion"], dependencies=[Depends(require_token)])

Body = Annotated[Any, Depends(json_body)]

_SIGNAL_EXAMPLE = {
    "signal_id": "crunchbase-81723",
    "type": "funding",
    "scope": "COMPANY",
    "account_key": "acme.com",
    "occurred_at": "2024-05-01T09:30:00Z",
    "source": "crunchbase",
    "attributes": {"amount": "25000000", "round": "Series B"},
}
_PROFILE_EXAMPLE = {
    "key": "jane@acme.com",
    "kind": "PERSON",
    "account_key": "acme.com",
    "updated_at": "2024-05-01T09:30:00Z",
    "email": "jane@acme.com",
    "owner": "rep-7",
    "fields": {"first_name": "Jane", "title": "VP Sales"},
}


def _batch_body(component: str, example: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "description": "A JSON array; each item is validated on its own.",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "array",
                        "items": {"$ref": f"#/components/schemas/{component}"},
                    },
                    "example": [example],
                }
            },
        }
    }


@ingestion.post(
    "/signals",
    response_model=IngestReport,
    responses=error_responses(401, 413, 422, 503),
    openapi_extra=_batch_body("SignalInput", _SIGNAL_EXAMPLE),
    summary="Publish signals",
)
async def post_signals(state: Runtime, body: Body) -> IngestReport:
    """Validate each signal as the `signal` schema does and publish the good ones
    to `signals`, keyed by account; the answer lists each rejected item."""
    return await state.ingestor.signals(_batch(body, state))


@ingestion.post(
    "/profiles",
    response_model=IngestReport,
    responses=error_responses(401, 413, 422, 503),
    openapi_extra=_batch_body("ProfileInput", _PROFILE_EXAMPLE),
    summary="Publish profiles",
)
async def post_profiles(state: Runtime, body: Body) -> IngestReport:
    """Validate each profile as the `profile` schema does and publish the good
    ones to `profiles`, keyed by the profile's key; the answer lists each
    rejected item."""
    return await state.ingestor.profiles(_batch(body, state))


def _batch(body: Any, state: ApiRuntime) -> list[Any]:
    if not isinstance(body, list):
        raise InvalidDefinition(
            [{"path": "", "message": "Send a JSON array of items."}]
        )
    limit = state.api_settings.max_batch_items
    if len(body) > limit:
        raise PayloadTooLarge(
            f"A batch carries at most {limit} items; this one has {len(body)}."
        )
    return body
