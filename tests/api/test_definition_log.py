"""The definition log on the real broker and Redis: versions, read-your-writes,
following another writer, deletion, and concurrent writers."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from signalflow.contracts import Codec
from signalflow.definitions import (
    DefinitionKindError,
    DefinitionLog,
    LogNotRunningError,
    StoredDefinition,
    UnknownDefinitionError,
    VersionConflictError,
)
from signalflow.settings import Settings
from signalflow.topics import Topics
from signalflow.workflow import Audience, Workflow


def an_audience(audience_id: str, name: str = "Funded accounts") -> Audience:
    return Audience.model_validate(
        {
            "id": audience_id,
            "name": name,
            "filter": {"kind": "company_signal", "types": ["funding"]},
        }
    )


def a_workflow(
    workflow_id: str, audience_id: str, *, status: str = "draft", seconds: int = 5
) -> Workflow:
    return Workflow.model_validate(
        {
            "id": workflow_id,
            "name": "Wait then nothing",
            "audience_id": audience_id,
            "steps": [{"kind": "delay", "params": {"seconds": seconds}}],
            "status": status,
        }
    )


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def test_save_assigns_versions_and_keeps_every_one(
    settings: Settings, topics: Topics
) -> None:
    async with DefinitionLog(settings) as log:
        audience_id = unique("aud")
        first = await log.save(an_audience(audience_id, "First name"))
        second = await log.save(an_audience(audience_id, "Second name"))

        assert (first, second) == (1, 2)
        latest = log.audience(audience_id)
        assert latest is not None and latest.name == "Second name"
        assert latest.version == 2
        old = log.audience(audience_id, version=1)
        assert old is not None and old.name == "First name"
        assert [entry.version for entry in log.history(audience_id)] == [1, 2]
        assert log.audiences() == {audience_id: latest}


async def test_a_new_log_reads_everything_written_before_it_started(
    settings: Settings, topics: Topics
) -> None:
    audience_id, workflow_id = unique("aud"), unique("wf")
    async with DefinitionLog(settings) as writer:
        await writer.save(an_audience(audience_id))
        await writer.save(a_workflow(workflow_id, audience_id, seconds=5))
        await writer.save(a_workflow(workflow_id, audience_id, seconds=7))

    async with DefinitionLog(settings) as reader:
        workflow = reader.workflow(workflow_id)
        assert workflow is not None and workflow.version == 2
        first = reader.workflow(workflow_id, version=1)
        assert first is not None
        assert first.steps[0].params.seconds == 5  # type: ignore[union-attr]
        assert reader.audience(audience_id) is not None
        assert reader.workflow(audience_id) is None  # an audience is no workflow


async def test_a_follower_sees_another_writers_saves_and_calls_back(
    settings: Settings, topics: Topics
) -> None:
    audience_id = unique("aud")
    async with DefinitionLog(settings) as writer, DefinitionLog(settings) as follower:
        seen: list[StoredDefinition] = []
        arrived = asyncio.Event()

        def remember(entry: StoredDefinition) -> None:
            seen.append(entry)
            arrived.set()

        follower.on_change(remember)
        await writer.save(an_audience(audience_id))
        await asyncio.wait_for(arrived.wait(), 10)

        assert [(e.id, e.version, e.deleted) for e in seen] == [(audience_id, 1, False)]
        assert follower.audience(audience_id) is not None


async def test_delete_is_a_new_version_and_keeps_the_history(
    settings: Settings, topics: Topics
) -> None:
    audience_id, workflow_id = unique("aud"), unique("wf")
    async with DefinitionLog(settings) as log:
        await log.save(an_audience(audience_id))
        await log.save(a_workflow(workflow_id, audience_id))
        deleted_version = await log.delete(workflow_id)

        assert deleted_version == 2
        assert log.workflow(workflow_id) is None
        assert log.workflow(workflow_id, version=1) is not None
        assert [e.deleted for e in log.history(workflow_id)] == [False, True]
        assert workflow_id not in log.workflows()
        with pytest.raises(UnknownDefinitionError):
            await log.delete(workflow_id)


async def test_active_workflows_follow_the_latest_status(
    settings: Settings, topics: Topics
) -> None:
    audience_id = unique("aud")
    running, paused = unique("wf"), unique("wf")
    async with DefinitionLog(settings) as log:
        await log.save(an_audience(audience_id))
        await log.save(a_workflow(running, audience_id, status="active"))
        await log.save(a_workflow(paused, audience_id, status="active"))
        await log.save(a_workflow(paused, audience_id, status="paused"))

        assert [workflow.id for workflow in log.active_workflows()] == [running]


async def test_an_id_keeps_its_kind(settings: Settings, topics: Topics) -> None:
    shared_id = unique("same")
    async with DefinitionLog(settings) as log:
        await log.save(an_audience(shared_id))
        with pytest.raises(DefinitionKindError, match="names a audience"):
            await log.save(a_workflow(shared_id, shared_id))


async def test_concurrent_writers_never_assign_the_same_version(
    settings: Settings, topics: Topics
) -> None:
    audience_id = unique("aud")
    async with DefinitionLog(settings) as one, DefinitionLog(settings) as two:
        saves = [
            log.save(an_audience(audience_id, f"Name {index}"))
            for index in range(6)
            for log in (one, two)
        ]
        versions = await asyncio.gather(*saves)

        assert sorted(versions) == list(range(1, 13))
        await one.sync()
        assert [e.version for e in one.history(audience_id)] == list(range(1, 13))


async def test_records_are_keyed_by_id_and_version(
    settings: Settings, topics: Topics
) -> None:
    audience_id = unique("aud")
    async with DefinitionLog(settings) as log:
        await log.save(an_audience(audience_id))
        await log.save(an_audience(audience_id))

    keys, records = _read_topic(settings, topics.name("workflows"), count=2)
    assert keys == [f"{audience_id}@1".encode(), f"{audience_id}@2".encode()]
    assert [record["version"] for record in records] == [1, 2]
    assert {record["kind"] for record in records} == {"AUDIENCE"}


async def test_the_log_refuses_use_before_start(settings: Settings) -> None:
    log = DefinitionLog(settings)
    with pytest.raises(LogNotRunningError):
        await log.save(an_audience(unique("aud")))


def _read_topic(
    settings: Settings, topic: str, *, count: int
) -> tuple[list[bytes], list[dict[str, Any]]]:
    consumer = Consumer(
        {
            **settings.kafka.librdkafka_config(),
            "group.id": unique("reader"),
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    codec = Codec.load()
    keys: list[bytes] = []
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    try:
        while len(keys) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            keys.append(message.key())
            records.append(codec.decode("definition", message.value()))
    finally:
        consumer.close()
    return keys, records


async def test_an_expected_version_guards_a_read_modify_write(
    settings: Settings, topics: Topics
) -> None:
    audience_id = unique("aud")
    async with DefinitionLog(settings) as log:
        assert await log.save(an_audience(audience_id), expect=0) == 1
        with pytest.raises(VersionConflictError, match="at version 0, it is at 1"):
            await log.save(an_audience(audience_id), expect=0)
        assert await log.save(an_audience(audience_id), expect=1) == 2
        with pytest.raises(VersionConflictError):
            await log.delete(audience_id, expect=1)
        assert [e.version for e in log.history(audience_id)] == [1, 2]
