"""Reading JSON bodies the api validates itself (definitions, ingestion batches).

Definitions are validated by the model, not by FastAPI, so that every problem is
reported in the model's `{"path", "message"}` form; their OpenAPI schemas are added
by `services.api.openapi`.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from services.api.problems import InvalidDefinition


async def json_body(request: Request) -> Any:
    """Dependency: the request body decoded as JSON; 422 when it is not JSON."""
    raw = await request.body()
    if not raw.strip():
        raise InvalidDefinition([{"path": "", "message": "The body is empty."}])
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidDefinition(
            [{"path": "", "message": f"The body is not valid JSON: {error}."}]
        ) from None
    except RecursionError:
        raise InvalidDefinition(
            [{"path": "", "message": "The body is nested too deeply."}]
        ) from None


def json_request_body(component: str, description: str) -> dict[str, Any]:
    """`openapi_extra` documenting a JSON body by a component schema's name."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{component}"}
                }
            },
        }
    }
