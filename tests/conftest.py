"""Shared fixtures: one real Kafka broker and one real PostgreSQL server per test session.

Both start lazily, only when a test asks for them, so unit tests stay fast. Set
NEXUS_TEST_KAFKA_BOOTSTRAP / NEXUS_TEST_DATABASE_URL to use servers that already run instead.
A server that cannot start fails the tests that need it; nothing is skipped.
Each test using `settings` gets its own database and topic prefix (UUID-named).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from webhook_sink import SinkLog, webhook_sink

from infra.config.settings import PROJECT_ROOT, Settings
from infra.local.kafka_cluster import KafkaCluster
from infra.local.kafka_server import KafkaServer, ensure_kafka_jars
from infra.local.postgres_server import PostgresServer, ensure_postgres_installed
from infra.local.processes import ProcessError, free_port, free_ports

__all__ = ["free_port"]

# Server logs land here so a failed CI run can be read afterwards (git-ignored).
ARTIFACTS = PROJECT_ROOT / "test-artifacts"


def traversable_temp_dir(prefix: str) -> Path:
    """A temp dir that the `postgres` OS user can enter (pytest's tmp dirs are root-only)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    return path


def start_test_kafka(data_dir: Path, log_file: Path) -> KafkaServer:
    """A fresh broker on free ports, ready to use; the caller stops it."""
    try:
        jars = ensure_kafka_jars(Settings())
    except ProcessError as exc:
        pytest.fail(f"no Kafka jars for the tests (run `make install`): {exc}", pytrace=False)
    port, controller_port = free_ports(2)
    server = KafkaServer(jars, data_dir, port, controller_port, log_file)
    try:
        server.start()
        server.wait_ready(timeout=90)
    except ProcessError as exc:
        server.stop(timeout=10)
        pytest.fail(f"could not start Kafka for the tests: {exc}", pytrace=False)
    return server


def start_test_kafka_cluster(base: Path, brokers: int, *, supervised: bool) -> KafkaCluster:
    """`brokers` fresh KRaft nodes on free ports, ready and all serving; the caller stops
    them. Small heaps: three JVMs share the test machine with the stack under test."""
    try:
        jars = ensure_kafka_jars(Settings())
    except ProcessError as exc:
        pytest.fail(f"no Kafka jars for the tests (run `make install`): {exc}", pytrace=False)
    ports = free_ports(2 * brokers)
    pairs = list(zip(ports[::2], ports[1::2], strict=True))
    cluster = KafkaCluster.create(jars, base, pairs, supervised=supervised, heap="448m")
    try:
        cluster.start()
        cluster.wait_ready(timeout=120)
    except ProcessError as exc:
        cluster.stop(timeout=10)
        pytest.fail(f"could not start a Kafka cluster for the tests: {exc}", pytrace=False)
    return cluster


def start_test_postgres(base: Path, log_file: Path) -> PostgresServer:
    """A fresh cluster under `base` (traversable by the postgres user); the caller stops it."""
    try:
        bin_dir = ensure_postgres_installed()
        server = PostgresServer(
            data_dir=base / "data",
            port=free_port(),
            password_file=base / "password",
            log_file=log_file,
            bin_dir=bin_dir,
        )
        server.start()
    except ProcessError as exc:
        pytest.fail(f"could not start PostgreSQL for the tests: {exc}", pytrace=False)
    return server


def _fresh_artifact(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.unlink(missing_ok=True)
    return path


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a real Kafka broker shared by the whole session."""
    if external := os.environ.get("NEXUS_TEST_KAFKA_BOOTSTRAP"):
        yield external
        return
    server = start_test_kafka(tmp_path_factory.mktemp("kafka"), _fresh_artifact("kafka.log"))
    yield server.bootstrap
    server.stop()


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """URL of a role that may create databases, on a real PostgreSQL shared by the session."""
    if external := os.environ.get("NEXUS_TEST_DATABASE_URL"):
        yield external
        return
    # The log stays in the temp dir while the server runs: the postgres OS user writes it and
    # may not be able to enter the checkout (say, under /root).
    base = traversable_temp_dir("nexus-test-pg-")
    server = start_test_postgres(base, base / "postgres.log")
    yield server.admin_url
    server.stop()
    shutil.copyfile(server.log_file, _fresh_artifact("postgres.log"))
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def kafka_server_factory(tmp_path: Path) -> Iterator[Callable[[], KafkaServer]]:
    """Starts private brokers (for restart and fault tests); all are stopped afterwards."""
    servers: list[KafkaServer] = []

    def start() -> KafkaServer:
        data_dir = tmp_path / f"kafka-{len(servers)}"
        servers.append(start_test_kafka(data_dir, data_dir / "kafka.log"))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


class KafkaClusterFactory(Protocol):
    def __call__(self, brokers: int = 3, *, supervised: bool = False) -> KafkaCluster: ...


@pytest.fixture
def kafka_cluster_factory(tmp_path: Path) -> Iterator[KafkaClusterFactory]:
    """Starts private clusters (n nodes, optionally supervised: a killed JVM comes back);
    all are stopped afterwards, their logs left in the test's tmp dir."""
    clusters: list[KafkaCluster] = []

    def start(brokers: int = 3, *, supervised: bool = False) -> KafkaCluster:
        base = tmp_path / f"kafka-cluster-{len(clusters)}"
        clusters.append(start_test_kafka_cluster(base, brokers, supervised=supervised))
        return clusters[-1]

    yield start
    for cluster in clusters:
        cluster.stop()


@pytest.fixture
def postgres_server_factory() -> Iterator[Callable[[], PostgresServer]]:
    """Starts private PostgreSQL clusters; all are stopped and deleted afterwards."""
    started: list[tuple[PostgresServer, Path]] = []

    def start() -> PostgresServer:
        base = traversable_temp_dir("nexus-test-pg-")
        started.append((start_test_postgres(base, base / "postgres.log"), base))
        return started[-1][0]

    yield start
    for server, base in started:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def database_url(server_url: str, database: str) -> str:
    """`server_url` pointing at another database on the same server."""
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@contextmanager
def isolated_settings(kafka_bootstrap: str, pg_admin_url: str, home: Path) -> Iterator[Settings]:
    """Settings with their own database `t_<hex>`, topic prefix `t<hex>` and home."""
    hexid = uuid.uuid4().hex
    database = f"t_{hexid}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    yield Settings(
        kafka_bootstrap=kafka_bootstrap,
        database_url=database_url(pg_admin_url, database),
        topic_prefix=f"t{hexid}",
        home=home,
        jwt_secret=f"test-secret-{hexid}",
    )
    try:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    except psycopg.Error:
        pass  # best effort: a leftover test database harms nothing


@pytest.fixture
def settings(kafka_bootstrap: str, pg_admin_url: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings for one test: its own database, topic prefix and home."""
    with isolated_settings(kafka_bootstrap, pg_admin_url, tmp_path) as isolated:
        yield isolated


@pytest.fixture(scope="module")
def module_settings(
    kafka_bootstrap: str, pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """Like `settings`, shared by one module's tests (for a whole running stack)."""
    with isolated_settings(kafka_bootstrap, pg_admin_url, tmp_path_factory.mktemp("stack")) as s:
        yield s


@pytest.fixture(scope="module")
def sink() -> Iterator[tuple[SinkLog, int]]:
    """A webhook receiver for one module's tests: its log and port."""
    with webhook_sink() as running:
        yield running
