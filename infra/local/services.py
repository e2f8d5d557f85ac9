"""The processes `nexus up` runs, declared as data, in start order.

Kafka, PostgreSQL and Prometheus come first; Kafka and PostgreSQL are left out when
NEXUS_KAFKA_BOOTSTRAP / NEXUS_DATABASE_URL point at existing infrastructure. The app services
are supervised `nexus run <name> --supervise` processes, as many instances of each as
NEXUS_SCALE asks. Instance 1 is named after its service (`projector`), instance n
`projector-n`; each has its own pid file (`<home>/run/<name>.pid`), log
(`<home>/logs/<name>.log`), probe port (infra/config/scale.py) and NEXUS_INSTANCE_ID (its
static consumer-group membership and transactional ids).
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from infra.config.scale import SERVICE_PORT_FIELDS, SERVICES, ServiceName, instance_name
from infra.config.settings import Settings
from infra.local.child_process import answers, wait_for_probe
from infra.local.kafka_cluster import KafkaCluster, local_kafka
from infra.local.postgres_server import PostgresServer, find_postgres_bin
from infra.local.processes import DetachedProcess, ProcessError, tail
from infra.local.prometheus_config import local_config_text
from infra.local.prometheus_server import PrometheusServer


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
    """An app process: `argv` runs it in the foreground, `health_url` (its /readyz) answers 200
    when ready and the /healthz beside it while it lives; `env` is added to its environment."""

    name: str
    argv: tuple[str, ...]
    port: int
    health_url: str
    env: tuple[tuple[str, str], ...] = ()
    of: str = ""  # the service this is an instance of, when not `name` itself

    @property
    def service(self) -> str:
        return self.of or self.name

    @property
    def live_url(self) -> str:
        return self.health_url.rsplit("/", 1)[0] + "/healthz"


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
            env={**os.environ, **dict(self.service.env)} if self.service.env else None,
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
        """The supervisor's pid (infra.local.supervise.supervised_child finds the service's)."""
        return self.process.pid()

    def start(self) -> None:
        self.process.start()

    def wait_ready(self, timeout: float) -> None:
        """Poll the health URL until it answers 200; fail early, naming the log, if it exits."""
        wait_for_probe(self.service.health_url, self._alive, timeout, self._failure)

    def wait_live(self, timeout: float) -> None:
        """Like `wait_ready`, for /healthz: the process runs and answers, ready or not."""
        wait_for_probe(self.service.live_url, self._alive, timeout, self._failure)

    def _alive(self) -> bool:
        return self.pid() is not None

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
    """Every instance NEXUS_SCALE asks for, service by service in start order."""
    return [
        _instance(settings, service, index)
        for service in SERVICES
        for index in range(1, settings.instances(service) + 1)
    ]


def _instance(settings: Settings, service: ServiceName, index: int) -> Service:
    port = settings.instance_port(service, index)
    host = settings.gateway_host if service == "gateway" else settings.metrics_host
    instance_id = settings.instance_id if index == 1 else f"{settings.instance_id}-{index}"
    env = {"NEXUS_INSTANCE_ID": instance_id}
    if service != "gateway":
        env[f"NEXUS_{SERVICE_PORT_FIELDS[service].upper()}"] = str(port)
    elif port != settings.gateway_port:  # one of several: it serves the shared port as well
        env["NEXUS_GATEWAY_INSTANCE_PORT"] = str(port)
    argv = (nexus_executable(), "run", service, "--supervise")
    url = f"http://{host}:{port}/readyz"
    name = instance_name(service, index)
    return Service(name, argv, port, url, tuple(env.items()), of=service if index > 1 else "")


def stray_instances(settings: Settings) -> list[AppProcess]:
    """Instances still running beyond what NEXUS_SCALE asks for now (it was larger)."""
    strays = []
    for service in SERVICES:
        for pid_file in sorted((settings.home / "run").glob(f"{service}-*.pid")):
            found = re.fullmatch(rf"{re.escape(service)}-(\d+)", pid_file.stem)
            if found is None or int(found[1]) <= settings.instances(service):
                continue
            app = AppProcess(_instance(settings, service, int(found[1])), settings.home)
            if app.pid() is not None:
                strays.append(app)
    return strays


def wait_serving(apps: Sequence[AppProcess], timeout: float) -> None:
    """Block until every instance answers /healthz and each service has one answering /readyz
    (a standby, such as a second projector, lives without being ready); ProcessError naming
    the logs if that takes longer than `timeout`."""
    deadline = time.monotonic() + timeout

    def remaining() -> float:
        return max(1.0, deadline - time.monotonic())

    for app in apps:
        app.wait_live(remaining())
    groups: dict[str, list[AppProcess]] = {}
    for app in apps:
        groups.setdefault(app.service.service, []).append(app)
    for service, group in groups.items():
        if len(group) == 1:
            group[0].wait_ready(remaining())  # fails early, with its log, if it exits
            continue
        while not any(answers(app.service.health_url) for app in group):
            if time.monotonic() > deadline:
                logs = ", ".join(str(app.log_file) for app in group)
                raise ProcessError(f"no {service} instance ready after {timeout:.0f}s; see {logs}")
            time.sleep(0.2)


def kafka_server(settings: Settings) -> KafkaCluster:
    """NEXUS_KAFKA_BROKERS supervised KRaft nodes, managed as one `kafka` service."""
    return local_kafka(settings)


def postgres_server(settings: Settings) -> PostgresServer:
    return PostgresServer(
        data_dir=settings.home / "pg",
        port=settings.postgres_port,
        password_file=settings.postgres_password_file,
        log_file=settings.home / "logs" / "postgres.log",
        bin_dir=find_postgres_bin(),
        pid_file=settings.home / "run" / "postgres.pid",
    )


def prometheus_server(settings: Settings) -> PrometheusServer:
    return PrometheusServer(
        home=settings.home / "prometheus",
        port=settings.prometheus_port,
        config=local_config_text(settings),
        log_file=settings.home / "logs" / "prometheus.log",
        pid_file=settings.home / "run" / "prometheus.pid",
    )


def infrastructure(settings: Settings) -> list[ManagedService]:
    """Kafka and PostgreSQL, unless the settings point at existing ones, and Prometheus."""
    managed: list[ManagedService] = []
    if not settings.kafka_bootstrap:
        managed.append(kafka_server(settings))
    if not settings.database_url:
        managed.append(postgres_server(settings))
    managed.append(prometheus_server(settings))
    return managed


def app_processes(settings: Settings) -> list[AppProcess]:
    """Every instance NEXUS_SCALE asks for, then any stray one still running."""
    configured = [AppProcess(s, settings.home) for s in app_services(settings)]
    return configured + stray_instances(settings)


def all_services(settings: Settings) -> list[ManagedService]:
    """Every service in start order; stop them in reverse."""
    return [*infrastructure(settings), *app_processes(settings)]


def lag_for(service: str, settings: Settings) -> str:
    """Consumer lag shown by `nexus status` for a consuming service ("-" when unknown)."""
    from infra.local.lag import group_lag, projector_lag

    try:
        return str(
            projector_lag(settings) if service == "projector" else group_lag(settings, service)
        )
    except Exception:  # status must print even when Kafka or Postgres is down
        return "-"
