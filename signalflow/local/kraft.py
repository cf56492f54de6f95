"""The layout of a local KRaft cluster: its nodes, their ports, files and storage.

Every node is a combined broker and controller on loopback; the controllers of all
nodes form the quorum. Node `i` (from 1) listens for clients on `port + 2(i-1)` and
for the quorum on the port after it, so one node uses 9092 and 9093, and three use
9092 to 9097.
"""

from __future__ import annotations

import base64
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from string import Template

from signalflow.local.errors import LocalInfraError
from signalflow.local.jars import KafkaDistribution
from signalflow.local.ports import LOOPBACK

JVM_HEAP = ("-Xms256m", "-Xmx1g")
_TOOL_HEAP = ("-Xmx256m",)
_FORMAT_TIMEOUT_S = 120


@dataclass(frozen=True)
class BrokerNode:
    """One combined broker and controller node and where its files live."""

    node_id: int
    port: int
    controller_port: int
    home: Path

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def properties(self) -> Path:
        return self.home / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def server_log(self) -> Path:
        return self.logs_dir / "server.log"

    @property
    def console_log(self) -> Path:
        """Where the JVM's own stdout and stderr go (crashes, fatal errors)."""
        return self.logs_dir / "console.log"

    def is_formatted(self) -> bool:
        return (self.data_dir / "meta.properties").is_file()


@dataclass(frozen=True)
class ClusterLayout:
    """The nodes of one local cluster, all under `home`."""

    home: Path
    nodes: tuple[BrokerNode, ...]

    @classmethod
    def plan(cls, clusters_dir: Path, *, brokers: int, port: int) -> ClusterLayout:
        """Return the layout of `brokers` nodes from `port` up, under `clusters_dir`.

        Each layout has its own directory, so a three-node cluster never reuses the
        storage of a single node and data survives a stop and start.
        """
        if brokers < 1:
            raise ValueError(f"expected at least one broker, got {brokers!r}")
        if not 1024 <= port <= 65535 - 2 * brokers:
            raise ValueError(f"expected a port from 1024 leaving room, got {port!r}")
        home = clusters_dir / f"{brokers}-node-{port}"
        nodes = tuple(
            BrokerNode(
                node_id=index + 1,
                port=port + 2 * index,
                controller_port=port + 2 * index + 1,
                home=home / f"node-{index + 1}",
            )
            for index in range(brokers)
        )
        return cls(home, nodes)

    @property
    def bootstrap(self) -> str:
        return ",".join(node.address for node in self.nodes)

    @property
    def replication(self) -> int:
        """Replication of the internal topics: every node, up to three."""
        return min(3, len(self.nodes))

    def node(self, node_id: int) -> BrokerNode:
        """Return the node with `node_id`, or raise KeyError naming the known ids."""
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        known = [node.node_id for node in self.nodes]
        raise KeyError(f"expected a node id in {known!r}, got {node_id!r}")

    def cluster_id(self) -> str:
        """Return this layout's cluster id, choosing one the first time."""
        path = self.home / "cluster.id"
        if path.is_file():
            return path.read_text().strip()
        self.home.mkdir(parents=True, exist_ok=True)
        # Kafka's ids are 16 random bytes in unpadded URL-safe base64: 22 characters.
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        path.write_text(cluster_id + "\n")
        return cluster_id

    def write_properties(self, template: Path) -> None:
        """Render every node's `server.properties` from `template`."""
        voters = ",".join(
            f"{node.node_id}@{LOOPBACK}:{node.controller_port}" for node in self.nodes
        )
        text = template.read_text()
        for node in self.nodes:
            node.logs_dir.mkdir(parents=True, exist_ok=True)
            rendered = Template(text).substitute(
                node_id=node.node_id,
                quorum_voters=voters,
                broker_port=node.port,
                controller_port=node.controller_port,
                data_dir=node.data_dir,
                replication=self.replication,
                min_isr=min(2, self.replication),
            )
            node.properties.write_text(rendered)


def jvm_command(
    java: str, distribution: KafkaDistribution, libs: Path, node: BrokerNode
) -> list[str]:
    """Return the command that runs `node` as a broker in the foreground."""
    return [
        java,
        *JVM_HEAP,
        *_jvm_logging(distribution, node),
        "-Djava.awt.headless=true",
        "-cp",
        f"{libs}/*",
        "kafka.Kafka",
        str(node.properties),
    ]


def format_storage(
    java: str,
    distribution: KafkaDistribution,
    libs: Path,
    layout: ClusterLayout,
    nodes: list[BrokerNode],
) -> None:
    """Format the KRaft storage of each of `nodes` that has none yet.

    Runs the storage tools side by side and waits for all of them. Raises
    LocalInfraError with the tool's output when one fails.
    """
    pending = [node for node in nodes if not node.is_formatted()]
    if not pending:
        return
    cluster_id = layout.cluster_id()
    tools = [
        (node, _start_format(java, distribution, libs, node, cluster_id))
        for node in pending
    ]
    # Wait for every tool before judging any, so none is left running.
    outputs = [
        (node, tool, tool.communicate(timeout=_FORMAT_TIMEOUT_S)[0])
        for node, tool in tools
    ]
    for node, tool, output in outputs:
        if tool.returncode != 0 or not node.is_formatted():
            raise LocalInfraError(
                f"expected node {node.node_id}'s storage in {str(node.data_dir)!r} "
                f"to be formatted; the storage tool exited {tool.returncode}:\n"
                f"{output.strip()[-2000:]}"
            )


def _start_format(
    java: str,
    distribution: KafkaDistribution,
    libs: Path,
    node: BrokerNode,
    cluster_id: str,
) -> subprocess.Popen[str]:
    command = [
        java,
        *_TOOL_HEAP,
        *_jvm_logging(distribution, node),
        "-cp",
        f"{libs}/*",
        "kafka.tools.StorageTool",
        "format",
        "--cluster-id",
        cluster_id,
        "--config",
        str(node.properties),
        "--ignore-formatted",
    ]
    return subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _jvm_logging(distribution: KafkaDistribution, node: BrokerNode) -> list[str]:
    return [
        f"-Dlog4j2.configurationFile={distribution.log4j_config}",
        f"-Dkafka.logs.dir={node.logs_dir}",
    ]
