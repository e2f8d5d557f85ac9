"""The bench's own Kafka broker and PostgreSQL server, on free ports in a temp dir.

Started once per run, the way tests/conftest.py starts them for a test session. Each
benchmark gets its own database and topic prefix, so none sees another's data.
"""

from __future__ import annotations

import shutil
import stat
import tempfile
import uuid
from pathlib import Path
from types import TracebackType

import psycopg

from infra.config.settings import Settings
from infra.local.kafka_server import KafkaServer, ensure_kafka_jars
from infra.local.postgres_server import PostgresServer, ensure_postgres_installed
from infra.local.processes import free_port, free_ports


class BenchEnvironment:
    """Kafka and PostgreSQL for one bench run; logs are copied to `log_dir` on exit."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        # The postgres OS user must be able to enter the cluster's folder.
        self.root = Path(tempfile.mkdtemp(prefix="nexus-bench-"))
        self.root.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        self.kafka: KafkaServer | None = None
        self.postgres: PostgresServer | None = None
        self.homes: list[Path] = []

    def __enter__(self) -> BenchEnvironment:
        try:
            self._start_kafka()
            self._start_postgres()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _start_kafka(self) -> None:
        jars = ensure_kafka_jars(Settings())
        port, controller_port = free_ports(2)
        data = self.root / "kafka"
        self.kafka = KafkaServer(jars, data, port, controller_port, data / "kafka.log")
        self.kafka.start()
        self.kafka.wait_ready(timeout=90)

    def _start_postgres(self) -> None:
        base = self.root / "postgres"
        self.postgres = PostgresServer(
            data_dir=base / "data",
            port=free_port(),
            password_file=base / "password",
            log_file=base / "postgres.log",
            bin_dir=ensure_postgres_installed(),
        )
        self.postgres.start()

    def settings(self, name: str) -> Settings:
        """Settings with a database, topic prefix, home and JWT secret of their own."""
        assert self.kafka is not None and self.postgres is not None
        hexid = uuid.uuid4().hex[:12]
        database = f"bench_{name}_{hexid}"
        with psycopg.connect(self.postgres.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        home = self.root / "homes" / name
        home.mkdir(parents=True, exist_ok=True)
        self.homes.append(home)
        return Settings(
            kafka_bootstrap=self.kafka.bootstrap,
            database_url=self.postgres.url(database),
            topic_prefix=f"bench-{name}-{hexid}",
            home=home,
            jwt_secret=f"bench-secret-{uuid.uuid4().hex}",
            log_level="warning",
        )

    def close(self) -> None:
        if self.kafka is not None:
            self.kafka.stop(timeout=30)
        if self.postgres is not None:
            self.postgres.stop()
        self._keep_logs()
        shutil.rmtree(self.root, ignore_errors=True)

    def _keep_logs(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        logs = [self.root / "kafka" / "kafka.log", self.root / "postgres" / "postgres.log"]
        for home in self.homes:
            logs.extend(home.glob("*.log"))
        for log in logs:
            if log.exists():
                target = self.log_dir / f"{log.parent.name}-{log.name}"
                shutil.copyfile(log, target)
