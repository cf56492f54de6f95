"""The api's FastAPI application."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI


def create_app() -> FastAPI:
    """Build the api application."""
    app = FastAPI(title="signalflow", version="0.1.0")

    @app.get("/health", tags=["health"])
    async def health() -> dict[str, Any]:
        return {"service": "api", "state": "running"}

    return app
