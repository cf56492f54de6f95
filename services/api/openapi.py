"""The api's OpenAPI document.

FastAPI documents the routes, answers and the bearer security scheme. The bodies
the api validates itself (audiences, workflows, signal and profile batches) are
added here from the models that validate them, so the document and the validation
cannot drift apart: `AudienceSubmission`, `WorkflowSubmission`, `SignalInput` and
`ProfileInput`, each with the types they use suffixed `In` (the answers use the
unsuffixed names, in their serialization form).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from signalflow.contracts.inputs import ProfileInput, SignalInput
from signalflow.workflow import Audience, Workflow
from signalflow.workflow.prebuilt import CAMPAIGNS

DESCRIPTION = """\
The control plane of signalflow: audiences (who qualifies) and workflows (what
happens to them), their versions, activation, previews, test and dry runs,
monitoring figures, and HTTP ingestion of signals and profiles.

Every route but `/health` needs `Authorization: Bearer <token>`. An invalid
definition is answered 422 with `{"errors": [{"path": "steps.2.params.url",
"message": "..."}]}`, one entry per problem.
"""

TAGS = [
    {"name": "audiences", "description": "Who qualifies for a campaign."},
    {"name": "workflows", "description": "What happens to an audience, step by step."},
    {"name": "runs", "description": "Activate, pause, preview, test and dry runs."},
    {"name": "monitoring", "description": "Pending, done, last run, OK, errors."},
    {"name": "prebuilt", "description": "Ready-made campaigns to start from."},
    {"name": "ingestion", "description": "Signals and profiles over HTTP."},
    {"name": "health", "description": "Liveness of the api and its dependencies."},
]

INPUT_SUFFIX = "In"
EXAMPLE_CAMPAIGN = "funding-multi-thread"
"""The prebuilt campaign whose audience and workflow serve as body examples."""


def install_openapi(app: FastAPI) -> None:
    """Replace `app.openapi` with a builder that adds the submission schemas."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document(app)
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]


def _document(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=DESCRIPTION,
        routes=app.routes,
        tags=TAGS,
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    example = CAMPAIGNS[EXAMPLE_CAMPAIGN]
    _add(
        schemas,
        "AudienceSubmission",
        Audience,
        drop=("version",),
        optional=("id",),
        example=example.audience,
    )
    _add(
        schemas,
        "WorkflowSubmission",
        Workflow,
        drop=("version", "status"),
        optional=("id",),
        example={**example.workflow, "audience_id": "aud_funded_accounts"},
    )
    _add(schemas, "SignalInput", SignalInput)
    _add(schemas, "ProfileInput", ProfileInput)
    _describe_times_of_day(document)
    return document


TIME_OF_DAY = {
    "type": "string",
    "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?$",
    "examples": ["09:00"],
}


def _describe_times_of_day(node: Any) -> None:
    """Describe times of day as the api reads and writes them.

    pydantic documents a `time` as JSON Schema's `format: time`, which is RFC
    3339's time with a UTC offset; the model's times of day (a schedule's `at`)
    have none, and are written as `09:00:00`.
    """
    if isinstance(node, list):
        for item in node:
            _describe_times_of_day(item)
        return
    if not isinstance(node, dict):
        return
    if node.get("format") == "time" and node.get("type") == "string":
        del node["format"]
        node.update({key: value for key, value in TIME_OF_DAY.items() if key != "type"})
    for value in node.values():
        _describe_times_of_day(value)


def _add(
    schemas: dict[str, Any],
    name: str,
    model: type[BaseModel],
    *,
    drop: Iterable[str] = (),
    optional: Iterable[str] = (),
    example: dict[str, Any] | None = None,
) -> None:
    """Add `model`'s validation schema as `name`, its types suffixed `In`."""
    schema = model.model_json_schema(
        mode="validation",
        by_alias=True,
        ref_template="#/components/schemas/{model}" + INPUT_SUFFIX,
    )
    for type_name, definition in schema.pop("$defs", {}).items():
        schemas.setdefault(type_name + INPUT_SUFFIX, definition)
    properties = schema.get("properties", {})
    for field in drop:
        properties.pop(field, None)
    leave_out = set(drop) | set(optional)
    required: list[str] = [
        field for field in schema.get("required", []) if field not in leave_out
    ]
    schema["required"] = required
    if not required:
        schema.pop("required")
    if example is not None:
        schema["examples"] = [example]
    schemas[name] = schema
