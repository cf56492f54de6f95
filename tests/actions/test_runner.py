"""The command runner on the real broker: concurrency, flow control, commits."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

from confluent_kafka import Consumer, Message, TopicPartition

from services.actions.runner import CommandRunner
from signalflow.kafka.clients import make_consumer, make_producer
from signalflow.settings import Settings
from signalflow.topics import ActionType, Topics


def produce_to_partition(
    settings: Settings, topic: str, partition: int, count: int
) -> None:
    producer = make_producer(settings, linger_ms=0)
    for index in range(count):
        producer.produce(topic, f"command-{index}".encode(), partition=partition)
    producer.flush(10)


def committed(settings: Settings, group: str, topic: str, partition: int) -> int:
    probe = Consumer({**settings.kafka.librdkafka_config(), "group.id": group})
    try:
        (position,) = probe.committed([TopicPartition(topic, partition)], timeout=10)
        return int(position.offset)
    finally:
        probe.close()


async def eventually(check: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def start_runner(
    settings: Settings,
    topic: str,
    handler: Callable[[Message], Awaitable[None]],
    **limits: int,
) -> tuple[CommandRunner, asyncio.Task[None], str]:
    group = f"runner-{uuid.uuid4().hex[:8]}"
    runner = CommandRunner(
        make_consumer(settings, group, auto_commit_interval_ms=200),
        [topic],
        handler,
        max_in_flight=limits.get("max_in_flight", 64),
        partition_concurrency=limits.get("partition_concurrency", 8),
        poll_timeout_s=0.05,
        revoke_drain_s=2,
    )
    return runner, asyncio.create_task(runner.run()), group


async def test_offsets_are_committed_only_up_to_the_oldest_unfinished_command(
    settings: Settings, topics: Topics
) -> None:
    topic = topics.action(ActionType.WEBHOOK)
    produce_to_partition(settings, topic, 0, 5)
    release_first = asyncio.Event()
    finished: list[int] = []

    async def handler(message: Message) -> None:
        if message.offset() == 0:
            await release_first.wait()
        finished.append(message.offset())

    runner, task, group = await start_runner(settings, topic, handler)
    await eventually(lambda: sorted(finished) == [1, 2, 3, 4])
    await asyncio.sleep(0.6)  # several auto-commit intervals

    held_back = await asyncio.to_thread(committed, settings, group, topic, 0)
    release_first.set()
    await eventually(lambda: len(finished) == 5)
    await eventually(lambda: committed(settings, group, topic, 0) == 5, timeout_s=10)
    runner.stop()
    await task

    assert held_back < 1  # nothing committed past the unfinished offset 0


async def test_a_partition_runs_at_most_its_concurrency_and_pauses_when_full(
    settings: Settings, topics: Topics
) -> None:
    topic = topics.action(ActionType.WEBHOOK)
    produce_to_partition(settings, topic, 1, 12)
    running = 0
    most = 0
    gate = asyncio.Event()

    async def handler(message: Message) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await gate.wait()
        running -= 1

    runner, task, _ = await start_runner(
        settings, topic, handler, partition_concurrency=3
    )
    await eventually(lambda: running == 3)
    await eventually(lambda: (topic, 1) in runner.paused)
    gate.set()
    await eventually(lambda: runner.records_done == 12)
    await eventually(lambda: (topic, 1) not in runner.paused)
    runner.stop()
    await task

    assert most == 3


async def test_the_process_limit_bounds_commands_in_flight(
    settings: Settings, topics: Topics
) -> None:
    topic = topics.action(ActionType.WEBHOOK)
    for partition in range(3):
        produce_to_partition(settings, topic, partition, 10)
    gate = asyncio.Event()
    peak = 0

    async def handler(message: Message) -> None:
        nonlocal peak
        peak = max(peak, runner.in_flight)
        await gate.wait()

    runner, task, _ = await start_runner(
        settings, topic, handler, max_in_flight=5, partition_concurrency=5
    )
    await eventually(lambda: runner.in_flight == 5)
    await asyncio.sleep(0.5)
    in_flight_while_full = runner.in_flight
    gate.set()
    await eventually(lambda: runner.records_done == 30)
    runner.stop()
    await task

    assert in_flight_while_full == 5 and peak <= 5


async def test_a_failing_handler_stops_the_runner_without_committing_it(
    settings: Settings, topics: Topics
) -> None:
    topic = topics.action(ActionType.WEBHOOK)
    produce_to_partition(settings, topic, 2, 3)

    async def handler(message: Message) -> None:
        if message.offset() == 1:
            raise RuntimeError("a bug in the handler")

    runner, task, group = await start_runner(settings, topic, handler)

    try:
        await asyncio.wait_for(task, 15)
    except RuntimeError as error:
        assert "a bug" in str(error)
    else:
        raise AssertionError("the runner should re-raise the handler's error")
    assert await asyncio.to_thread(committed, settings, group, topic, 2) <= 1


async def test_a_rebalance_drains_running_commands_and_hands_over_the_rest(
    settings: Settings, topics: Topics
) -> None:
    topic = topics.action(ActionType.WEBHOOK)
    for partition in range(3):
        produce_to_partition(settings, topic, partition, 20)
    handled: list[tuple[int, int]] = []

    async def handler(message: Message) -> None:
        # Slow enough that the first runner is still busy (60 commands, 4 at a
        # time: about 7 s) when the second has joined the group and takes over.
        await asyncio.sleep(0.5)
        handled.append((message.partition(), message.offset()))

    group = f"runner-{uuid.uuid4().hex[:8]}"

    def runner() -> CommandRunner:
        return CommandRunner(
            make_consumer(settings, group, auto_commit_interval_ms=200),
            [topic],
            handler,
            max_in_flight=4,
            partition_concurrency=2,
            poll_timeout_s=0.05,
            revoke_drain_s=5,
        )

    first, second = runner(), runner()
    first_task = asyncio.create_task(first.run())
    await eventually(lambda: len(handled) >= 5)
    second_task = asyncio.create_task(second.run())
    await eventually(lambda: len(set(handled)) == 60, timeout_s=60)
    await eventually(lambda: second.assignment != set(), timeout_s=30)
    first.stop()
    second.stop()
    await asyncio.gather(first_task, second_task)

    assert first.records_done > 0 and second.records_done > 0
    for partition in range(3):
        assert committed(settings, group, topic, partition) == 20
    # Only commands still running when their partition moved may run twice.
    assert len(handled) - len(set(handled)) <= 4
