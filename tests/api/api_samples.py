"""Definitions the api tests submit: valid ones, and builders for variants."""

from __future__ import annotations

import uuid
from typing import Any


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def audience_body(audience_id: str | None = None, **changes: Any) -> dict[str, Any]:
    """The guide's example audience: funded account, multi-threaded person with an
    email and no recent activity."""
    body: dict[str, Any] = {
        "name": "Funding account multi-thread",
        "filter": {
            "kind": "all",
            "of": [
                {"kind": "company_signal", "types": ["funding"], "within_days": 90},
                {"kind": "person_signal", "types": ["multi_thread"]},
                {"kind": "has_email", "value": True},
                {
                    "kind": "last_activity",
                    "condition": "before",
                    "months": 6,
                    "or_empty": True,
                },
            ],
        },
    }
    if audience_id is not None:
        body["id"] = audience_id
    return {**body, **changes}


def workflow_body(
    audience_id: str, workflow_id: str | None = None, **changes: Any
) -> dict[str, Any]:
    """A three-step workflow: upsert in the CRM, wait, notify the owner."""
    body: dict[str, Any] = {
        "name": "Funding follow-up",
        "audience_id": audience_id,
        "schedule": {"kind": "realtime"},
        "steps": [
            {"kind": "crm_upsert", "name": "Upsert"},
            {"kind": "delay", "params": {"days": 1}},
            {
                "kind": "slack",
                "params": {
                    "recipients": [{"kind": "record_owner"}],
                    "message": "*$First Name* at $Company Name raised funding :rocket:",
                },
            },
        ],
    }
    if workflow_id is not None:
        body["id"] = workflow_id
    return {**body, **changes}
