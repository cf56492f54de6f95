"""Fixtures of the api tests: the application on the real broker and Redis.

Most tests share one running application (`api`), under a topic prefix of the
session's own: every object a test creates has a fresh id, so tests do not see
each other's data where it matters. Tests that need other api settings, or an
empty environment, build their own with `running_api()`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from services.api.app import create_app
from services.api.settings import ApiSettings
from signalflow.kafka.admin import delete_topics, ensure_topics
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


@pytest.fixture(scope="session")
def shared_settings(kafka_bootstrap: str, redis_url: str) -> Iterator[Settings]:
    settings = environment(kafka_bootstrap, redis_url)
    yield settings
    delete_topics(settings)


@pytest.fixture(scope="session")
async def api(shared_settings: Settings) -> AsyncIterator[FastAPI]:
    """One application for the session's tests."""
    async with running_api(shared_settings) as app:
        yield app


@pytest.fixture
async def client(api: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the shared application, sending an accepted token."""
    async with client_for(api) as http:
        yield http


@pytest.fixture
async def anonymous(api: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the shared application that sends no token."""
    async with client_for(api, token=None) as http:
        yield http
