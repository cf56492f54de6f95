"""Fixtures every test shares: a real Kafka cluster and a real Redis server.

Where they come from, first match wins:

1. `KAFKA_BOOTSTRAP_SERVERS` / `REDIS_URL` in the environment: that cluster, that
   server; nothing is started.
2. A Docker engine that answers a ping: testcontainers' Kafka and Redis.
3. Otherwise a local broker and `redis-server` (`signalflow.local`), started once per
   session on free ports, never 9092 or 6379 which a developer may be using, in a
   temporary state dir that shares the broker's jar cache; stopped at session end.

Each test that asks for `settings` gets its own topic prefix, and its topics are
deleted after it. Tests that use `cluster` get a three-node cluster of their own, for
killing brokers; they are marked `cluster`, so `-m "not cluster"` skips them.
"""

from __future__ import annotations

import os
import signal
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

import pytest

from signalflow.kafka.admin import delete_topics, ensure_topics
from signalflow.local import (
    LocalInfraError,
    LocalKafka,
    LocalRedis,
    MissingToolError,
    external_bootstrap,
    external_redis_url,
    free_port_block,
)
from signalflow.local.jars import KafkaDistribution
from signalflow.settings import KafkaSettings, RedisSettings, Settings
from signalflow.topics import Topics

# Where the broker's jars are cached for every state dir the tests create.
JAR_CACHE = Settings().state_dir

CLUSTER_BROKERS = 3
_STOP_GRACE_S = 10.0
_DOCKER_PING_TIMEOUT_S = 3
_PORT_ATTEMPTS = 3


def pytest_configure(config: pytest.Config) -> None:
    """Treat SIGTERM like Ctrl-C, so a run ended by `timeout` or a CI runner still
    tears the session down and stops the broker and Redis it started."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the `cluster` fixture with the `cluster` marker."""
    for item in items:
        if "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def docker_engine() -> bool:
    """Whether a Docker engine answers a ping, so testcontainers can run servers."""
    return _docker_ping(os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"))


def _docker_ping(docker_host: str) -> bool:
    # A raw HTTP ping: the Docker SDK leaves a socket open when the engine is
    # absent, which the warnings-as-errors run would report.
    url = urlsplit(docker_host)
    if url.scheme == "unix":
        if not Path(url.path).exists():
            return False
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        address: str | tuple[str, int] = url.path
    elif url.scheme in ("tcp", "http") and url.hostname and url.port:
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        address = (url.hostname, url.port)
    else:
        return False
    with probe:
        probe.settimeout(_DOCKER_PING_TIMEOUT_S)
        try:
            probe.connect(address)
            probe.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status_line = probe.recv(64).split(b"\r\n", 1)[0]
        except OSError:
            return False
    return status_line.split(b" ")[1:2] == [b"200"]


@pytest.fixture(scope="session")
def kafka_bootstrap(
    tmp_path_factory: pytest.TempPathFactory, docker_engine: bool
) -> Iterator[str]:
    """The bootstrap servers of the session's Kafka cluster."""
    external = external_bootstrap()
    if external is not None:
        yield external
        return
    if docker_engine:
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
        return

    kafka = LocalKafka(
        tmp_path_factory.mktemp("kafka-state"),
        cache_dir=JAR_CACHE,
        stop_grace_s=_STOP_GRACE_S,
    )
    try:
        yield _start_on_free_ports(kafka, brokers=1)
    finally:
        kafka.stop()


def _start_on_free_ports(kafka: LocalKafka, *, brokers: int) -> str:
    # Ports found free can be taken by another test session before the broker
    # binds them; fresh ones are tried then.
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        try:
            return kafka.start(brokers=brokers, port=free_port_block(2 * brokers))
        except MissingToolError:
            raise
        except LocalInfraError:
            if attempt == _PORT_ATTEMPTS or kafka.status().running:
                raise
    raise AssertionError("unreachable: the last attempt returns or raises")


@pytest.fixture(scope="session")
def redis_url(
    tmp_path_factory: pytest.TempPathFactory, docker_engine: bool
) -> Iterator[str]:
    """The URL of the session's Redis server."""
    external = external_redis_url()
    if external is not None:
        yield external
        return
    if docker_engine:
        from testcontainers.community.redis import RedisContainer

        with RedisContainer() as container:
            host = container.get_container_host_ip()
            yield f"redis://{host}:{container.get_exposed_port(6379)}/0"
        return

    redis = LocalRedis(tmp_path_factory.mktemp("redis-state"))
    try:
        yield redis.start(port=free_port_block(1))
    finally:
        redis.stop()


@pytest.fixture
def settings(kafka_bootstrap: str, redis_url: str) -> Iterator[Settings]:
    """Settings for the session's servers with a topic prefix of this test's own.

    After the test, every topic with that prefix is deleted.
    """
    settings = _settings_for(kafka_bootstrap, redis_url)
    yield settings
    delete_topics(settings)


@pytest.fixture
def topics(settings: Settings) -> Topics:
    """The topic table under this test's prefix, every topic created."""
    ensure_topics(settings)
    return Topics(settings)


@pytest.fixture(scope="session")
def _cluster_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    kafka = LocalKafka(
        tmp_path_factory.mktemp("cluster-state"),
        cache_dir=JAR_CACHE,
        stop_grace_s=_STOP_GRACE_S,
    )
    try:
        _start_on_free_ports(kafka, brokers=CLUSTER_BROKERS)
        yield kafka
    finally:
        kafka.stop()


@pytest.fixture
def cluster(_cluster_session: LocalKafka) -> LocalKafka:
    """A local three-node cluster (always local: its brokers get killed).

    Started the first time a test asks for it. Nodes an earlier test killed are
    started again before the next test that asks for it, so each finds all three
    running and the last test's kills cost no restart.
    """
    _cluster_session.start(brokers=CLUSTER_BROKERS)
    return _cluster_session


@pytest.fixture(scope="session")
def jar_cache_dir() -> Path:
    """The state dir whose `kafka-<version>/libs` holds the broker's jars."""
    return JAR_CACHE


@pytest.fixture
def state_dir(tmp_path: Path, jar_cache_dir: Path) -> Path:
    """A fresh state dir whose jar cache is the shared one, so nothing is fetched."""
    version = KafkaDistribution.from_deploy_dir().version
    shared = jar_cache_dir / f"kafka-{version}"
    shared.mkdir(parents=True, exist_ok=True)
    state = tmp_path / "state"
    state.mkdir()
    (state / f"kafka-{version}").symlink_to(shared, target_is_directory=True)
    return state


def _settings_for(bootstrap: str, redis_url: str) -> Settings:
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap),
        redis=RedisSettings(url=redis_url),
        topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
        default_partitions=3,
    )
