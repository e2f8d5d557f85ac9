"""The processes `nexus up` runs, declared as data, in start order.

Kafka and PostgreSQL are left out when NEXUS_KAFKA_BOOTSTRAP / NEXUS_DATABASE_URL point at
existing infrastructure. The app services are `nexus run <name>` processes with a /readyz URL.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from infra.config.settings import Settings
from infra.local.child_process import wait_for_probe
from infra.local.kafka_server import KafkaServer, kafka_jars_dir
from infra.local.postgres_server import PostgresServer, find_postgres_bin
from infra.local.processes import DetachedProcess, tail


class ManagedService(Protocol):
    """What `up`, `down` and `status` need from a service."""

    @property
    def name(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def log_file(self) -> Path: ...
    def pid(self) -> int | None: ...
    def start(self) -> None: ...
    def wait_ready(self, timeout: float) -> None: ...
    def stop(self, timeout: float) -> bool: ...


@dataclass(frozen=True)
class Service:
    """An app process: `argv` runs it in the foreground, `health_url` answers 200 when ready."""

    name: str
    argv: tuple[str, ...]
    port: int
    health_url: str


@dataclass
class AppProcess:
    """A `Service` run detached, with `<home>/run/<name>.pid` and `<home>/logs/<name>.log`."""

    service: Service
    home: Path
    process: DetachedProcess = field(init=False)

    def __post_init__(self) -> None:
        self.process = DetachedProcess(
            self.service.name,
            self.service.argv,
            pid_file=self.home / "run" / f"{self.service.name}.pid",
            log_file=self.log_file,
        )

    @property
    def name(self) -> str:
        return self.service.name

    @property
    def port(self) -> int:
        return self.service.port

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / f"{self.service.name}.log"

    def pid(self) -> int | None:
        return self.process.pid()

    def start(self) -> None:
        self.process.start()

    def wait_ready(self, timeout: float) -> None:
        """Poll the health URL until it answers 200; fail early, naming the log, if it exits."""
        alive = lambda: self.pid() is not None  # noqa: E731
        wait_for_probe(self.service.health_url, alive, timeout, self._failure)

    def _failure(self, what: str) -> str:
        return (
            f"{self.name} {what} ({self.service.health_url}); see {self.log_file}:\n"
            f"{tail(self.log_file)}"
        )

    def stop(self, timeout: float) -> bool:
        return self.process.stop(timeout)


def nexus_executable() -> str:
    """The `nexus` script next to the running interpreter (the project venv)."""
    return str(Path(sys.executable).with_name("nexus"))


def app_services(settings: Settings) -> list[Service]:
    nexus = nexus_executable()

    def local(name: str, port: int) -> Service:
        url = f"http://127.0.0.1:{port}/readyz"
        return Service(name, (nexus, "run", name, "--supervise"), port, url)

    gateway_url = f"http://{settings.gateway_host}:{settings.gateway_port}/readyz"
    return [
        local("command-processor", settings.command_processor_health_port),
        local("projector", settings.projector_health_port),
        local("workflows", settings.workflows_health_port),
        local("notifier", settings.notifier_health_port),
        local("analytics", settings.analytics_health_port),
        Service(
            "gateway", (nexus, "run", "gateway", "--supervise"), settings.gateway_port, gateway_url
        ),
    ]


def kafka_server(settings: Settings) -> KafkaServer:
    return KafkaServer(
        jars=kafka_jars_dir(settings),
        data_dir=settings.home / "kafka" / "data",
        port=settings.kafka_port,
        controller_port=settings.kafka_controller_port,
        log_file=settings.home / "logs" / "kafka.log",
        pid_file=settings.home / "run" / "kafka.pid",
    )


def postgres_server(settings: Settings) -> PostgresServer:
    return PostgresServer(
        data_dir=settings.home / "pg",
        port=settings.postgres_port,
        password_file=settings.postgres_password_file,
        log_file=settings.home / "logs" / "postgres.log",
        bin_dir=find_postgres_bin(),
    )


def infrastructure(settings: Settings) -> list[ManagedService]:
    """Kafka and PostgreSQL, unless the settings point at existing ones."""
    managed: list[ManagedService] = []
    if not settings.kafka_bootstrap:
        managed.append(kafka_server(settings))
    if not settings.database_url:
        managed.append(postgres_server(settings))
    return managed


def all_services(settings: Settings) -> list[ManagedService]:
    """Every service in start order; stop them in reverse."""
    apps: list[ManagedService] = [AppProcess(s, settings.home) for s in app_services(settings)]
    return [*infrastructure(settings), *apps]


def lag_for(service: str, settings: Settings) -> str:
    """Consumer lag shown by `nexus status` for a consuming service ("-" when unknown)."""
    from infra.local.lag import group_lag, projector_lag

    try:
        return str(
            projector_lag(settings) if service == "projector" else group_lag(settings, service)
        )
    except Exception:  # status must print even when Kafka or Postgres is down
        return "-"
