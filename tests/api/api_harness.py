"""The api under test: its settings, a running application and its clients.

Most tests share one running application (`api`), under a topic prefix of the
session's own: every object a test creates has a fresh id, so tests do not see
each other's data where it matters. Tests that need other api settings, or an
empty environment, build their own with `running_api()`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from services.api.app import create_app
from services.api.settings import ApiSettings
from signalflow.kafka.admin import ensure_topics
from signalflow.settings import KafkaSettings, RedisSettings, Settings

TOKEN = f"token-{uuid.uuid4().hex}"
OTHER_TOKEN = f"token-{uuid.uuid4().hex}"
BASE_URL = "http://api.test"


def api_settings(**overrides: Any) -> ApiSettings:
    """Api settings accepting `TOKEN` and `OTHER_TOKEN`."""
    return ApiSettings(
        tokens=SecretStr(f"{TOKEN}, {OTHER_TOKEN}"),
        preview_timeout_s=overrides.pop("preview_timeout_s", 5.0),
        sse_keepalive_s=overrides.pop("sse_keepalive_s", 0.5),
        **overrides,
    )


def environment(kafka_bootstrap: str, redis_url: str) -> Settings:
    """Settings with a topic prefix of their own, every topic created."""
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap),
        redis=RedisSettings(url=redis_url),
        topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
        default_partitions=3,
    )
    ensure_topics(settings)
    return settings


@asynccontextmanager
async def running_api(
    settings: Settings, own: ApiSettings | None = None
) -> AsyncIterator[FastAPI]:
    """The application with its lifespan started (ASGITransport does not run it)."""
    app = create_app(settings, own or api_settings())
    async with app.router.lifespan_context(app):
        yield app


def client_for(app: FastAPI, token: str | None = TOKEN) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL, headers=headers
    )


def remote_client(base_url: str) -> httpx.AsyncClient:
    """A client of a live server, sending an accepted token."""
    return httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=20
    )


@asynccontextmanager
async def live_server(app: FastAPI) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on a free loopback port; yield its base URL.

    Used where a test needs real HTTP streaming (server-sent events).
    """
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
