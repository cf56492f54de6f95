"""The api's errors and the JSON bodies it answers them with.

::

    ApiError                   answered with {"detail": "..."}
    ├── NotFound           404 no such audience, workflow, version or run
    ├── Conflict           409 the request contradicts what is saved
    ├── PayloadTooLarge    413 a batch with more items than allowed
    ├── Unavailable        503 a dependency (Kafka, Redis) did not answer
    ├── GatewayTimeout     504 the matcher did not answer in time
    └── InvalidDefinition  422 answered with {"errors": [{"path", "message"}]}

A definition is invalid when the model rejects it or when it names saved objects
that are missing or form a cycle; every problem carries the dotted path of the
field at fault (`steps.2.params.url`). Malformed requests (a query parameter out of
range, a body that is not JSON) get the same 422 shape.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)


class Problem(BaseModel):
    """What went wrong, in a sentence."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"detail": "No workflow 'wf_3f2a' exists."}]}
    )

    detail: str = Field(description="A sentence saying what went wrong.")


class FieldError(BaseModel):
    """One problem with a submitted definition or request."""

    path: str = Field(
        description="Dotted path of the offending field; empty for the whole body.",
        examples=["steps.2.params.url"],
    )
    message: str = Field(
        examples=["A webhook URL must start with http:// or https://."]
    )


class ValidationProblem(BaseModel):
    """Every problem found in a submitted definition or request."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "errors": [
                        {
                            "path": "schedule.day_of_week",
                            "message": "Weekly schedules need a day of the week.",
                        }
                    ]
                }
            ]
        }
    )

    errors: list[FieldError] = Field(min_length=1)


class ApiError(Exception):
    """An error the api answers with `status_code` and a `Problem` body."""

    status_code = status.HTTP_500_INTERNAL_SERVER_ERROR

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(ApiError):
    status_code = status.HTTP_404_NOT_FOUND


class Conflict(ApiError):
    status_code = status.HTTP_409_CONFLICT


class PayloadTooLarge(ApiError):
    status_code = status.HTTP_413_CONTENT_TOO_LARGE


class Unavailable(ApiError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE


class GatewayTimeout(ApiError):
    status_code = status.HTTP_504_GATEWAY_TIMEOUT


class InvalidDefinition(ApiError):
    """422: the definition or request has the listed problems."""

    status_code = status.HTTP_422_UNPROCESSABLE_CONTENT

    def __init__(self, errors: Sequence[dict[str, str]]) -> None:
        self.errors = [dict(error) for error in errors]
        summary = "; ".join(f"{e['path']}: {e['message']}" for e in self.errors)
        super().__init__(summary or "invalid definition")


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the error codes a route can answer."""
    descriptions = {
        400: "The request cannot be read.",
        401: "No bearer token, or one that is not accepted.",
        404: "No such object.",
        409: "The request contradicts what is saved.",
        413: "The batch is larger than the api accepts.",
        422: "The definition or request is invalid; every problem has a path.",
        503: "Kafka or Redis did not answer.",
        504: "The matcher did not answer in time.",
    }
    return {
        code: {
            "model": ValidationProblem if code == 422 else Problem,
            "description": descriptions[code],
        }
        for code in codes
    }


def install_error_handlers(app: FastAPI) -> None:
    """Answer `ApiError`s and malformed requests with the documented bodies."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _request_invalid)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, InvalidDefinition):
        return JSONResponse({"errors": exc.errors}, status_code=exc.status_code)
    if not isinstance(exc, ApiError):  # registered for ApiError only
        raise exc
    if exc.status_code >= 500:
        log.warning(
            "%s %s answered %d: %s",
            request.method,
            request.url.path,
            exc.status_code,
            exc.detail,
        )
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)


async def _request_invalid(request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    body = {"errors": [_field_error(error) for error in errors]}
    if not body["errors"]:
        body["errors"] = [{"path": "", "message": "The request is invalid."}]
    return JSONResponse(body, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def _field_error(error: dict[str, Any]) -> dict[str, str]:
    loc = [str(part) for part in error.get("loc", ())]
    if loc and loc[0] == "body":
        loc = loc[1:]
    return {"path": ".".join(loc), "message": str(error.get("msg", "invalid"))}
