"""Fixtures of the dispatcher's integration tests: the definition log and a running
dispatcher (with its delay relays) on the session's real broker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.dispatcher.service import Dispatcher
from services.dispatcher.settings import DispatcherSettings
from signalflow.contracts import Codec
from signalflow.definitions import DefinitionLog
from signalflow.settings import Settings
from signalflow.topics import Topics


@pytest.fixture(scope="session")
def codec() -> Codec:
    return Codec.load()


@pytest.fixture
async def definitions(
    settings: Settings, topics: Topics, codec: Codec
) -> AsyncIterator[DefinitionLog]:
    """A started definition log on this test's topics."""
    async with DefinitionLog(settings, codec=codec) as log:
        yield log


@pytest.fixture
async def dispatcher(
    settings: Settings, definitions: DefinitionLog, codec: Codec
) -> AsyncIterator[Dispatcher]:
    """A running dispatcher with every tier's relay, retries backing off from 200 ms."""
    own = DispatcherSettings(
        relays="all", retry_base_ms=200, retry_cap_ms=2_000, port=0, relay_port=0
    )
    service = Dispatcher(settings, own=own, codec=codec, definitions=definitions)
    async with service:
        yield service
