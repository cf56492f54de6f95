"""A local Apache Kafka cluster: one node for development, three for fault tests.

`LocalKafka` fetches the broker's jars once, formats KRaft storage, starts combined
broker and controller nodes on loopback and records their pids in the state dir, so
a later command (or another process) can report on them and stop exactly those.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from signalflow.local.errors import AlreadyRunningError, LocalInfraError, StartupError
from signalflow.local.jars import DEPLOY_DIR, KafkaDistribution
from signalflow.local.kraft import (
    BrokerNode,
    ClusterLayout,
    format_storage,
    jvm_command,
)
from signalflow.local.ports import port_accepts, port_is_free
from signalflow.local.processes import (
    ProcessRecord,
    StateFile,
    exclusive,
    kill,
    record_from_json,
    record_to_json,
    spawn,
    stop_all,
)
from signalflow.local.tools import require_java
from signalflow.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_PORT = 9092
BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
_POLL_S = 0.25
_METADATA_TIMEOUT_S = 2.0
_LOG_TAIL_LINES = 25


@dataclass(frozen=True)
class NodeStatus:
    """What one recorded node is doing."""

    node_id: int
    address: str
    controller_port: int
    pid: int | None
    alive: bool
    log: Path


@dataclass(frozen=True)
class KafkaStatus:
    """What the state dir records as running, checked against the live processes."""

    bootstrap: str | None
    nodes: tuple[NodeStatus, ...]

    @property
    def running(self) -> bool:
        """Whether any recorded node is alive."""
        return any(node.alive for node in self.nodes)

    @property
    def complete(self) -> bool:
        """Whether a cluster is recorded and every one of its nodes is alive."""
        return bool(self.nodes) and all(node.alive for node in self.nodes)


@dataclass(frozen=True)
class _Recorded:
    layout: ClusterLayout
    processes: dict[int, ProcessRecord]

    def alive(self, node: BrokerNode) -> bool:
        record = self.processes.get(node.node_id)
        return record is not None and record.is_alive()


class LocalKafka:
    """Starts, watches and stops a local KRaft cluster recorded under `state_dir`.

    Args:
        state_dir: where node data, logs and the record of running pids live.
        cache_dir: where `kafka-<version>/libs` holds the jars; defaults to
            `state_dir`. Several state dirs can share one cache.
        deploy_dir: the directory with the pom, the log4j2 config and the
            `server.properties` template.
        start_timeout_s: how long `start` waits for the nodes to answer.
        stop_grace_s: how long `stop` waits after SIGTERM before SIGKILL.

    Every method takes a lock in the state dir, so two commands never start or stop
    the same cluster at once.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        cache_dir: Path | None = None,
        deploy_dir: Path = DEPLOY_DIR,
        start_timeout_s: float = 120.0,
        stop_grace_s: float = 30.0,
    ) -> None:
        self._home = state_dir / "kafka"
        self._cache_dir = cache_dir or state_dir
        self._deploy_dir = deploy_dir
        self._start_timeout_s = start_timeout_s
        self._stop_grace_s = stop_grace_s
        self._state = StateFile(self._home / "running.json")
        self._lock = self._home / ".lock"

    @property
    def bootstrap(self) -> str:
        """The recorded cluster's bootstrap servers; LocalInfraError if none."""
        return self._require_recorded().layout.bootstrap

    def fetch(self) -> Path:
        """Fetch the broker's jars into the cache unless present; return their dir.

        Raises MissingToolError without `mvn`, LocalInfraError when Maven fails.
        """
        distribution = KafkaDistribution.from_deploy_dir(self._deploy_dir)
        return distribution.ensure_libs(self._cache_dir)

    def start(self, brokers: int = 1, port: int | None = None) -> str:
        """Start `brokers` nodes, clients on `port` and up; return bootstrap.

        Idempotent: when the same cluster already runs, returns its address at once;
        nodes of it that died are started again. Without `port`, a recorded cluster
        of this size that died without `stop` (a crash, a reboot) comes back on its
        own ports; anything else starts on 9092. Waits until every started node
        answers a metadata request listing all nodes.

        Raises AlreadyRunningError when a cluster of another size or port runs from
        this state dir, MissingToolError without java 17+ (or mvn, for the first
        fetch), LocalInfraError when a port is taken, and StartupError (after
        stopping what it started) when a node exits or does not answer in time.
        """
        with exclusive(self._lock):
            recorded = self._recorded()
            if recorded and any(recorded.alive(n) for n in recorded.layout.nodes):
                _check_same_cluster(recorded.layout, brokers=brokers, port=port)
                dead = [n for n in recorded.layout.nodes if not recorded.alive(n)]
                if not dead:
                    logger.info("Kafka already runs at %s", recorded.layout.bootstrap)
                    return recorded.layout.bootstrap
                logger.warning("restarting stopped nodes %s", [n.node_id for n in dead])
                return self._launch(recorded.layout, dead, recorded.processes)

            port = port or _previous_port(recorded, brokers) or DEFAULT_PORT
            layout = ClusterLayout.plan(self._home, brokers=brokers, port=port)
            return self._launch(layout, list(layout.nodes), {})

    def stop(self) -> None:
        """Stop the recorded nodes and forget them; do nothing if none are recorded.

        SIGTERMs exactly the recorded processes, waits up to `stop_grace_s` for a
        clean shutdown, SIGKILLs what remains and waits until all have exited.
        Data stays in the state dir for the next start.
        """
        with exclusive(self._lock):
            recorded = self._recorded()
            if recorded is None:
                return
            stop_all(recorded.processes.values(), grace_s=self._stop_grace_s)
            self._state.clear()
            logger.info("stopped Kafka at %s", recorded.layout.bootstrap)

    def status(self) -> KafkaStatus:
        """Report the recorded nodes and whether each process is alive.

        Reads the record without waiting for a `start` or `stop` in progress.
        """
        recorded = self._recorded()
        if recorded is None:
            return KafkaStatus(bootstrap=None, nodes=())
        nodes = tuple(
            NodeStatus(
                node_id=node.node_id,
                address=node.address,
                controller_port=node.controller_port,
                pid=_pid(recorded.processes.get(node.node_id)),
                alive=recorded.alive(node),
                log=node.server_log,
            )
            for node in recorded.layout.nodes
        )
        return KafkaStatus(bootstrap=recorded.layout.bootstrap, nodes=nodes)

    def kill_broker(self, node_id: int) -> None:
        """SIGKILL node `node_id` and wait until it is gone, as a crash would.

        The node stays recorded; `start` brings it back. Raises KeyError for an
        unknown node id and LocalInfraError when that node is not running.
        """
        with exclusive(self._lock):
            recorded = self._require_recorded()
            node = recorded.layout.node(node_id)
            if not recorded.alive(node):
                raise LocalInfraError(f"expected node {node_id!r} to be running")
            kill(recorded.processes[node_id])
            logger.info("killed node %s at %s", node_id, node.address)

    def _launch(
        self,
        layout: ClusterLayout,
        nodes: list[BrokerNode],
        processes: dict[int, ProcessRecord],
    ) -> str:
        java = require_java()
        distribution = KafkaDistribution.from_deploy_dir(self._deploy_dir)
        libs = distribution.ensure_libs(self._cache_dir)
        _check_ports_free(nodes)
        layout.write_properties(distribution.properties_template)
        format_storage(java, distribution, libs, layout, nodes)

        started = {
            node.node_id: spawn(
                jvm_command(java, distribution, libs, node), output=node.console_log
            )
            for node in nodes
        }
        processes = {**processes, **started}
        # Recorded before waiting, so `stop` finds nodes that are slow to answer.
        self._record(layout, processes)
        try:
            self._wait_until_ready(layout, nodes, started)
        except StartupError:
            stop_all(started.values(), grace_s=5.0)
            if not any(record.is_alive() for record in processes.values()):
                self._state.clear()
            raise
        logger.info("Kafka runs at %s", layout.bootstrap)
        return layout.bootstrap

    def _wait_until_ready(
        self,
        layout: ClusterLayout,
        nodes: list[BrokerNode],
        started: Mapping[int, ProcessRecord],
    ) -> None:
        expected_ids = {node.node_id for node in layout.nodes}
        deadline = time.monotonic() + self._start_timeout_s
        waiting = list(nodes)
        while True:
            for node in waiting:
                if not started[node.node_id].is_alive():
                    raise StartupError(
                        f"node {node.node_id} exited while starting; its log ends:\n"
                        f"{_log_tail(node)}"
                    )
            waiting = [n for n in waiting if not _answers(n, expected_ids)]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise StartupError(
                    f"expected nodes {[n.node_id for n in waiting]} to answer a "
                    f"metadata request within {self._start_timeout_s:.0f}s; logs are "
                    f"in {str(layout.home)!r}"
                )
            time.sleep(_POLL_S)

    def _recorded(self) -> _Recorded | None:
        state = self._state.read()
        if state is None:
            return None
        layout = ClusterLayout.plan(
            self._home, brokers=int(state["brokers"]), port=int(state["port"])
        )
        processes = {
            int(entry["node_id"]): record_from_json(entry)
            for entry in state["processes"]
        }
        return _Recorded(layout, processes)

    def _require_recorded(self) -> _Recorded:
        recorded = self._recorded()
        if recorded is None:
            raise LocalInfraError(
                f"expected a local Kafka cluster recorded in {str(self._home)!r}, "
                "found none; start one first"
            )
        return recorded

    def _record(
        self, layout: ClusterLayout, processes: Mapping[int, ProcessRecord]
    ) -> None:
        state: dict[str, Any] = {
            "brokers": len(layout.nodes),
            "port": layout.nodes[0].port,
            "bootstrap": layout.bootstrap,
            "processes": [
                {
                    "node_id": node.node_id,
                    "port": node.port,
                    "controller_port": node.controller_port,
                    **record_to_json(processes[node.node_id]),
                }
                for node in layout.nodes
                if node.node_id in processes
            ],
        }
        self._state.write(state)


def external_bootstrap() -> str | None:
    """Return the cluster `KAFKA_BOOTSTRAP_SERVERS` names, or None when unset.

    When the environment names a cluster, nothing local is started.
    """
    return os.environ.get(BOOTSTRAP_ENV) or None


def ensure_kafka(settings: Settings, *, brokers: int = 1) -> str:
    """Return the environment's cluster, or start (or find) the local one.

    Waits for a local cluster to answer; raises what `LocalKafka.start` raises.
    """
    external = external_bootstrap()
    if external is not None:
        return external
    return LocalKafka(settings.state_dir).start(brokers=brokers)


def _previous_port(recorded: _Recorded | None, brokers: int) -> int | None:
    # A cluster of the same size that stopped (a reboot, a crash) comes back on
    # its own ports, with its own data.
    if recorded is None or len(recorded.layout.nodes) != brokers:
        return None
    return recorded.layout.nodes[0].port


def _check_same_cluster(
    layout: ClusterLayout, *, brokers: int, port: int | None
) -> None:
    running_port = layout.nodes[0].port
    if brokers == len(layout.nodes) and port in (None, running_port):
        return
    raise AlreadyRunningError(
        f"a {len(layout.nodes)}-node cluster already runs at {layout.bootstrap}; "
        f"stop it before starting {brokers} node(s) on port "
        f"{port or running_port!r}"
    )


def _check_ports_free(nodes: list[BrokerNode]) -> None:
    for node in nodes:
        for port in (node.port, node.controller_port):
            if not port_is_free(port):
                raise LocalInfraError(
                    f"expected port {port!r} free for node {node.node_id}, but "
                    "something listens there; choose another with --port"
                )


def _answers(node: BrokerNode, expected_ids: set[int]) -> bool:
    # A node's own metadata answer proves it serves requests; listing every node
    # proves the cluster formed. A fresh client knows only this node, so the
    # answer comes from it.
    if not port_accepts(node.port):
        return False
    admin = AdminClient({"bootstrap.servers": node.address})
    try:
        metadata = admin.list_topics(timeout=_METADATA_TIMEOUT_S)
    except KafkaException as error:
        logger.debug("node %s not answering yet: %s", node.node_id, error)
        return False
    return metadata.orig_broker_id == node.node_id and expected_ids <= set(
        metadata.brokers
    )


def _pid(record: ProcessRecord | None) -> int | None:
    return record.pid if record else None


def _log_tail(node: BrokerNode) -> str:
    lines: list[str] = []
    for path in (node.console_log, node.server_log):
        if path.is_file():
            lines += path.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
    return "\n".join(lines) or f"(nothing logged in {str(node.logs_dir)!r})"
