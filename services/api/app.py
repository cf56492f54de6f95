"""The api's FastAPI application.

`create_app()` wires the routes, the error bodies, the OpenAPI document and the
bearer guard; its lifespan starts the `ApiRuntime` (definition log, Kafka clients,
Redis) before the first request and stops it after the last.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from services.api.auth import TokenChecker, Unauthorized
from services.api.openapi import install_openapi
from services.api.payloads import Health
from services.api.problems import install_error_handlers
from services.api.routes.catalog import catalog
from services.api.routes.definitions import audiences, workflows
from services.api.routes.ingestion import ingestion
from services.api.routes.monitoring import monitoring
from services.api.routes.operations import operations
from services.api.runtime import ApiRuntime
from services.api.settings import ApiSettings
from signalflow.settings import Settings, get_settings

log = logging.getLogger(__name__)

# Served without a token: the health probe, and the description of the api itself
# (it holds no data).
OPEN_PATHS = frozenset({"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect"})


class ApiConfigError(RuntimeError):
    """The api's settings cannot work (for example, no token configured)."""


def create_app(
    settings: Settings | None = None, api_settings: ApiSettings | None = None
) -> FastAPI:
    """Build the api application.

    Raises ApiConfigError when no bearer token is configured: the api would
    refuse every request, which is never what was meant.
    """
    settings = settings or get_settings()
    api_settings = api_settings or ApiSettings()
    tokens = api_settings.token_values()
    if not tokens:
        raise ApiConfigError(
            "expected at least one bearer token in SIGNALFLOW_API_TOKENS"
            " (comma-separated), got none"
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = ApiRuntime(settings, api_settings)
        app.state.runtime = runtime
        try:
            await runtime.start()
        except BaseException:
            await runtime.stop()
            raise
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="signalflow",
        version="0.1.0",
        lifespan=lifespan,
        redoc_url=None,
    )
    app.state.token_checker = TokenChecker(tokens)
    install_error_handlers(app)
    install_openapi(app)
    for router in (audiences, workflows, operations, monitoring, catalog, ingestion):
        app.include_router(router)
    app.add_api_route(
        "/health",
        health,
        methods=["GET"],
        response_model=Health,
        responses={503: {"model": Health, "description": "Starting or degraded."}},
        tags=["health"],
        summary="Health of the api",
    )
    app.add_middleware(BearerGuard, checker=app.state.token_checker)
    return app


async def health(request: Request) -> JSONResponse:
    """200 while the api and its background consumers run, 503 otherwise."""
    runtime: ApiRuntime | None = getattr(request.app.state, "runtime", None)
    report = runtime.health() if runtime else Health(state="starting", components={})
    code = 200 if report.state == "running" else 503
    return JSONResponse(report.model_dump(), status_code=code)


class BearerGuard:
    """Answers 401 before anything else (body parsing included) unless the
    request carries an accepted bearer token; `OPEN_PATHS` pass."""

    def __init__(self, app: ASGIApp, *, checker: TokenChecker) -> None:
        self._app = app
        self._checker = checker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self._app(scope, receive, send)
            return
        problem = self._problem(scope)
        if problem is None:
            await self._app(scope, receive, send)
            return
        response = JSONResponse(
            {"detail": problem.detail},
            status_code=problem.status_code,
            headers=problem.headers,
        )
        await response(scope, receive, send)

    def _problem(self, scope: Scope) -> Unauthorized | None:
        headers = dict(scope.get("headers") or [])
        value = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return Unauthorized("Send Authorization: Bearer <token>.")
        if not self._checker.accepts(token.strip()):
            return Unauthorized("The bearer token is not accepted.")
        return None
