"""Fixtures of the api tests: the application on the real broker and Redis.

See `api_harness` for how the application is run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from api_harness import client_for, environment, running_api
from fastapi import FastAPI

from signalflow.kafka.admin import delete_topics
from signalflow.settings import Settings


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
