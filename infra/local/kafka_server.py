"""One KRaft Kafka node (broker and controller in one JVM) run from Maven Central jars, for
`nexus up` and the tests; alone it is a whole cluster, or one of several (kafka_cluster.py).

A supervised node runs under `python -m infra.local.supervise`, which restarts a JVM that
died; its pid file then names the supervisor, and stopping it stops the JVM too.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from infra.config.settings import Replication, Settings
from infra.local.processes import DetachedProcess, ProcessError, apt_install, tail
from infra.local.supervise import supervised_argv, supervised_child

KAFKA_DIR = Path(__file__).resolve().parent / "kafka"
POM = KAFKA_DIR / "pom.xml"
LOG4J_CONFIG = KAFKA_DIR / "log4j2.yaml"
BROKER_JAR_GLOB = "kafka_2.13-*.jar"


def kafka_jars_dir(settings: Settings) -> Path:
    """Where the broker jars are (or will be): `$KAFKA_HOME/libs` or `<home>/kafka/jars`."""
    if kafka_home := os.environ.get("KAFKA_HOME"):
        return Path(kafka_home) / "libs"
    return settings.home / "kafka" / "jars"


def ensure_kafka_jars(settings: Settings) -> Path:
    """The broker jar folder, fetched once from Maven Central with infra/local/kafka/pom.xml."""
    jars = kafka_jars_dir(settings)
    if os.environ.get("KAFKA_HOME") or any(jars.glob(BROKER_JAR_GLOB)):
        return jars
    ensure_java_and_maven()
    _download_jars(jars)
    return jars


def _download_jars(jars: Path) -> None:
    jars.parent.mkdir(parents=True, exist_ok=True)
    # A private staging dir, renamed into place: a half-finished download never looks
    # complete, and two concurrent first runs (say, two pytest sessions) do not collide.
    staging = Path(tempfile.mkdtemp(prefix=f"{jars.name}.partial-", dir=jars.parent))
    staging.chmod(0o755)
    argv = [
        "mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
    ]  # fmt: skip
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if result.returncode != 0 or not any(staging.glob(BROKER_JAR_GLOB)):
        shutil.rmtree(staging, ignore_errors=True)
        output = (result.stdout + result.stderr)[-3000:]
        raise ProcessError(f"fetching Kafka jars with Maven failed:\n{output}")
    if jars.exists() and not any(jars.glob(BROKER_JAR_GLOB)):
        shutil.rmtree(jars)
    try:
        staging.rename(jars)
    except OSError:  # another process finished first
        shutil.rmtree(staging, ignore_errors=True)


def ensure_java_and_maven() -> None:
    if not (shutil.which("java") and shutil.which("mvn")):
        apt_install(["openjdk-17-jre-headless", "maven"])


def new_cluster_id() -> str:
    """A Kafka cluster id: a random UUID, base64url-encoded without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


@dataclass(frozen=True)
class Quorum:
    """What every node of one cluster shares: the controller voters and the replication."""

    voters: tuple[tuple[int, int], ...]  # (node id, controller port) of every node
    replication: Replication

    @classmethod
    def of(cls, controller_ports: list[int]) -> Quorum:
        """Nodes 1..n with these controller ports, replicated as n brokers allow."""
        voters = tuple(enumerate(controller_ports, start=1))
        return cls(voters, Replication.for_brokers(len(voters)))

    @property
    def voters_property(self) -> str:
        return ",".join(f"{node}@127.0.0.1:{port}" for node, port in self.voters)


@dataclass
class KafkaServer:
    """One broker+controller process; its data dir holds the config, cluster id and logs.

    Without a `quorum` it is a one-node cluster of its own."""

    jars: Path
    data_dir: Path
    port: int
    controller_port: int
    log_file: Path
    pid_file: Path | None = None
    heap: str = "768m"
    node_id: int = 1
    quorum: Quorum | None = None
    supervised: bool = False
    name: str = "kafka"
    _jvm: DetachedProcess = field(init=False, repr=False)
    _process: DetachedProcess = field(init=False, repr=False)  # _jvm, or its supervisor

    def __post_init__(self) -> None:
        argv = self.jvm_argv()
        pid_file = self.pid_file or self.data_dir / "kafka.pid"
        self._jvm = DetachedProcess(self.name, argv, pid_file, self.log_file)
        self._process = self._jvm
        if self.supervised:
            supervisor = supervised_argv(argv)
            self._process = DetachedProcess(self.name, supervisor, pid_file, self.log_file)

    def jvm_argv(self) -> list[str]:
        """The broker's own command line (what its supervisor runs)."""
        return [
            "java", f"-Xmx{self.heap}", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp", f"{self.jars}/*", "kafka.Kafka", str(self.properties_file),
        ]  # fmt: skip

    @property
    def cluster(self) -> Quorum:
        """The quorum this node belongs to: `quorum`, or a quorum of this node alone."""
        return self.quorum or Quorum.of([self.controller_port])

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "log"

    def pid(self) -> int | None:
        """The pid in the pid file while it runs: the supervisor's when supervised. A JVM
        started without one (by an older `nexus up`) counts too, so it is not started twice
        and `stop` still reaches it."""
        return self._process.pid() or self._jvm.pid()

    def broker_pid(self) -> int | None:
        """The JVM's own pid (the one to SIGKILL or SIGSTOP), or None while there is none,
        as between a crash and its supervisor's restart."""
        pid = self.pid()
        return supervised_child(pid) if pid is not None else None

    def start(self) -> None:
        """Configure, format once, and launch the broker unless it already runs."""
        if self.pid() is not None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(self.server_properties())
        if not (self.log_dir / "meta.properties").exists():
            self._format_storage()
        self._process.start()

    def server_properties(self) -> str:
        replication = self.cluster.replication
        replicas, in_sync = str(replication.factor), str(replication.min_insync)
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.cluster.voters_property,
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.log_dir),
            "default.replication.factor": replicas,
            "min.insync.replicas": in_sync,
            "offsets.topic.replication.factor": replicas,
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": in_sync,
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": in_sync,
            "unclean.leader.election.enable": "false",  # an acknowledged write is never dropped
            # A dead broker's partitions move once the controller fences it: after 6 s
            # without a heartbeat rather than 9, so the gateway's 503s end sooner.
            "broker.session.timeout.ms": "6000",
            "broker.heartbeat.interval.ms": "1000",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            # Events are the source of truth: never expire them.
            "log.retention.ms": "-1",
            "log.retention.bytes": "-1",
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _format_storage(self) -> None:
        id_file = self.data_dir / "cluster.id"
        if not id_file.exists():
            id_file.write_text(new_cluster_id() + "\n")
        argv = [
            "java", "-Xmx256m", f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp", f"{self.jars}/*", "kafka.tools.StorageTool", "format",
            # One token: an id may start with "-", which argparse would take for an option.
            f"--cluster-id={id_file.read_text().strip()}", "-c", str(self.properties_file),
        ]  # fmt: skip
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if result.returncode != 0:
            raise ProcessError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the broker answers a metadata request; fail early if it died."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        deadline = time.monotonic() + timeout
        while True:
            try:
                admin.list_topics(timeout=1)
                return
            except Exception as exc:  # KafkaException until the listener is up
                if self.pid() is None:
                    raise ProcessError(self._failure("exited", exc)) from exc
                if time.monotonic() > deadline:
                    raise ProcessError(self._failure(f"not ready after {timeout}s", exc)) from exc
            time.sleep(0.2)

    def _failure(self, what: str, exc: Exception) -> str:
        return f"Kafka {what} ({exc}); see {self.log_file}:\n{tail(self.log_file)}"

    def stop(self, timeout: float = 30.0) -> bool:
        """Controlled shutdown (SIGTERM), SIGKILL after `timeout`; True if it was running."""
        running = self._process if self._process.pid() is not None else self._jvm
        return running.stop(timeout)
