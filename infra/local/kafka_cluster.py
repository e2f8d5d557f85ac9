"""Local Kafka as one managed service: one KRaft node, or several forming a replicated cluster.

Every node is broker and controller at once, with its own data dir, ports and node id; they
share `controller.quorum.voters` and one cluster id, formatted into each. `nexus up` runs
`local_kafka(settings)`; the tests build clusters on free ports with `KafkaCluster.create`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from infra.config.settings import Settings
from infra.local.kafka_server import KafkaServer, Quorum, kafka_jars_dir, new_cluster_id
from infra.local.processes import ProcessError

T = TypeVar("T")
LEADERLESS_GRACE_S = 5.0


@dataclass
class KafkaCluster:
    """The nodes of one cluster, started, awaited and stopped together.

    It is the `kafka` service of `nexus up` (infra.local.services.ManagedService)."""

    nodes: list[KafkaServer]

    @classmethod
    def create(
        cls,
        jars: Path,
        base: Path,
        ports: Sequence[tuple[int, int]],
        *,
        supervised: bool = False,
        heap: str = "768m",
        logs: Path | None = None,
        run: Path | None = None,
    ) -> KafkaCluster:
        """Nodes 1..n under `base/node-<n>`, on these (client, controller) ports; each logs
        to `logs/kafka-<n>.log` and writes `run/kafka-<n>.pid` (default: its data dir)."""
        quorum = Quorum.of([controller for _, controller in ports])

        def node(n: int, port: int, controller: int) -> KafkaServer:
            name, data = f"kafka-{n}", base / f"node-{n}"
            return KafkaServer(
                jars, data, port, controller, (logs or data) / f"{name}.log",
                pid_file=(run or data) / f"{name}.pid", heap=heap, node_id=n, quorum=quorum,
                supervised=supervised, name=name,
            )  # fmt: skip

        return cls([node(n, port, ctl) for n, (port, ctl) in enumerate(ports, start=1)])

    @property
    def name(self) -> str:
        return "kafka"

    @property
    def port(self) -> int:
        return self.nodes[0].port

    @property
    def log_file(self) -> Path:
        """Node 1's log; node n logs beside it in `kafka-<n>.log`."""
        return self.nodes[0].log_file

    @property
    def log_files(self) -> list[Path]:
        """Every node's log, node 1 first."""
        return [node.log_file for node in self.nodes]

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    def pid(self) -> int | None:
        """Node 1's pid while every node runs; None when any is down."""
        pids = [node.pid() for node in self.nodes]
        return pids[0] if all(pids) else None

    def start(self) -> None:
        """Start every node that is not running; each is formatted once, all with one id."""
        cluster_id = self._cluster_id()
        for node in self.nodes:
            node.data_dir.mkdir(parents=True, exist_ok=True)
            id_file = node.data_dir / "cluster.id"
            if not id_file.exists():
                id_file.write_text(cluster_id + "\n")
        self._on_every_node(KafkaServer.start)

    def _on_every_node(self, action: Callable[[KafkaServer], T]) -> list[T]:
        """`action` on all nodes at once (formatting takes a JVM's start-up time each)."""
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            return list(pool.map(action, self.nodes))

    def _cluster_id(self) -> str:
        for node in self.nodes:
            if (id_file := node.data_dir / "cluster.id").exists():
                return id_file.read_text().strip()
        return new_cluster_id()

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until every node answers metadata and lists all brokers as serving."""
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            node.wait_ready(max(1.0, deadline - time.monotonic()))
        self._wait_for_brokers(deadline, timeout)

    def _wait_for_brokers(self, deadline: float, timeout: float) -> None:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        while True:
            # Fenced brokers (not yet registered, or lost) are left out of the metadata.
            serving = set(admin.list_topics(timeout=5).brokers)
            if serving == {node.node_id for node in self.nodes}:
                return
            if time.monotonic() > deadline:
                raise ProcessError(f"Kafka: brokers {sorted(serving)} serving after {timeout}s")
            time.sleep(0.2)

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the nodes one by one, node 1 last; True if any was running.

        A broker's controlled shutdown needs an active controller, so a quorum of voters
        alive. While one remains, a node gets `timeout` to stop cleanly. The last nodes,
        left without one, would wait for it in vain (as Kafka's own tests find, and then
        kill them): they get LEADERLESS_GRACE_S, then SIGKILL. Their data is in the page
        cache and their logs are recovered on start; nothing acknowledged is lost."""
        quorum = len(self.nodes) // 2 + 1
        stopped = False
        for node in reversed(self.nodes):
            alive = sum(other.pid() is not None for other in self.nodes)
            stopped |= node.stop(timeout if alive >= quorum else LEADERLESS_GRACE_S)
        return stopped


def local_kafka(settings: Settings) -> KafkaCluster:
    """The supervised cluster `nexus up` runs: NEXUS_KAFKA_BROKERS nodes on the settings' ports.

    One broker keeps its data in `<home>/kafka/data`; n brokers are another cluster, in
    `<home>/kafka/cluster-<n>/node-<i>`, so changing the count never mixes their data."""
    ports = settings.kafka_node_ports
    jars, home = kafka_jars_dir(settings), settings.home
    if len(ports) == 1:
        port, controller = ports[0]
        node = KafkaServer(
            jars, home / "kafka" / "data", port, controller, home / "logs" / "kafka.log",
            pid_file=home / "run" / "kafka.pid", supervised=True,
        )  # fmt: skip
        return KafkaCluster([node])
    return KafkaCluster.create(
        jars, home / "kafka" / f"cluster-{len(ports)}", ports, supervised=True, heap="512m",
        logs=home / "logs", run=home / "run",
    )  # fmt: skip
