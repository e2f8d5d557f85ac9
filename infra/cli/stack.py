"""`nexus install`, `prepare`, `up`, `down`, `status` and `logs`: the local stack's lifecycle.

`up` starts the infrastructure (Kafka, PostgreSQL, Prometheus), prepares topics and schema,
then every app service supervised and detached, and waits until each one serves.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from infra.config.consumers import CONSUMER_GROUPS
from infra.config.settings import Settings
from infra.local.kafka_cluster import KafkaCluster
from infra.local.kafka_server import ensure_kafka_jars
from infra.local.postgres_server import ensure_postgres_installed
from infra.local.processes import ensure_command, ensure_compose, ensure_secret_file
from infra.local.prometheus_server import ensure_prometheus_installed
from infra.local.services import (
    AppProcess,
    ManagedService,
    all_services,
    app_processes,
    app_services,
    infrastructure,
    lag_for,
    prometheus_server,
    stray_instances,
    wait_serving,
)
from infra.local.status import all_serving, observe_all
from projections.migrations import migrate
from streams.kafka.topics import ensure_topics

INFRA_READY_TIMEOUT_S = 60.0
APP_READY_TIMEOUT_S = 120.0
APP_STOP_TIMEOUT_S = 20.0
INFRA_STOP_TIMEOUT_S = 60.0

# Services with a consumer lag to show: the projector's is kept in PostgreSQL.
CONSUMERS = ("projector", *CONSUMER_GROUPS)


def install(args: argparse.Namespace, settings: Settings) -> int:
    """Install what `up` and the tests need: Java, Maven, the Kafka jars, PostgreSQL,
    Prometheus (and with it promtool)."""
    print(f"kafka jars: {ensure_kafka_jars(settings)}")
    print(f"postgres:   {ensure_postgres_installed()}")
    print(f"prometheus: {ensure_prometheus_installed()}")
    if args.test_tools:
        print(f"compose:    {' '.join(ensure_compose())}")
        print(f"kcat:       {ensure_command('kcat', 'kcat')}")
        print(f"promtool:   {ensure_command('promtool', 'prometheus')}")
        print(f"chromium:   {ensure_command('chromium', 'chromium')}")
    return 0


def install_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--test-tools",
        action="store_true",
        help="also install what tests use: Compose, kcat, promtool, Chromium",
    )


def prepare(args: argparse.Namespace, settings: Settings) -> int:
    """Create the JWT secret, the topics and the database schema (idempotent)."""
    ensure_secret_file(settings.jwt_secret_file, nbytes=48)
    ensure_topics(settings)
    migrate(settings.resolved_database_url)
    return 0


def up(args: argparse.Namespace, settings: Settings) -> int:
    """Start what is not running: infrastructure, then NEXUS_SCALE instances of every app
    service (stopping instances beyond it); wait until every service serves."""
    settings.home.mkdir(parents=True, exist_ok=True)
    infra = infrastructure(settings)
    if any(service.name == "kafka" for service in infra):
        ensure_kafka_jars(settings)
    if any(service.name == "postgres" for service in infra):
        ensure_postgres_installed()
    _start(infra)
    for service in infra:
        service.wait_ready(INFRA_READY_TIMEOUT_S)
    prepare(args, settings)
    _stop(stray_instances(settings), APP_STOP_TIMEOUT_S, "stopped (beyond NEXUS_SCALE)")
    apps = [AppProcess(service, settings.home) for service in app_services(settings)]
    _start(apps)
    wait_serving(apps, APP_READY_TIMEOUT_S)
    _print_urls(apps, settings)
    return 0


def _start(services: Sequence[ManagedService]) -> None:
    for service in services:
        already = service.pid() is not None
        service.start()
        print(f"{service.name:<18} {'already running' if already else 'started'}")


def _print_urls(apps: Sequence[AppProcess], settings: Settings) -> None:
    print("\nNexus is up:")
    gateway = f"http://{settings.gateway_host}:{settings.gateway_port}"
    instances = [app for app in apps if app.service.health_url != f"{gateway}/readyz"]
    rows = [("gateway", gateway)] + [(app.name, app.service.health_url) for app in instances]
    rows.append(("kafka", settings.resolved_kafka_bootstrap))
    rows.append(("postgres", _hide_password(settings.resolved_database_url)))
    rows.append(("prometheus", prometheus_server(settings).url))
    rows.append(("logs", str(settings.home / "logs")))
    for name, where in rows:
        print(f"  {name:<18} {where}")


def _hide_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"


def down(args: argparse.Namespace, settings: Settings) -> int:
    """Stop every app instance (they flush to Kafka/Postgres), then the infrastructure."""
    _stop(app_processes(settings), APP_STOP_TIMEOUT_S)
    _stop(list(reversed(infrastructure(settings))), INFRA_STOP_TIMEOUT_S)
    return 0


def _stop(services: Sequence[ManagedService], timeout: float, done: str = "stopped") -> None:
    """Stop them all at once (each may take its time to flush); print one line each."""
    with ThreadPoolExecutor(max_workers=max(1, len(services))) as pool:
        stopped = list(pool.map(lambda service: service.stop(timeout), services))
    for service, was_running in zip(services, stopped, strict=True):
        print(f"{service.name:<18} {done if was_running else 'not running'}")


def status(args: argparse.Namespace, settings: Settings) -> int:
    """One row per service instance with its own pid and state (infra.local.status); exit 0
    when every service serves, 3 otherwise."""
    rows = [("SERVICE", "STATE", "PID", "PORT", "LAG")]
    if settings.kafka_bootstrap:
        rows.append(("kafka", "external", "-", settings.kafka_bootstrap, "-"))
    if settings.database_url:
        rows.append(("postgres", "external", "-", "-", "-"))
    services = all_services(settings)
    observed = observe_all(services)
    consuming = sorted({seen.service for seen in observed} & set(CONSUMERS))
    with ThreadPoolExecutor(max_workers=max(1, len(consuming))) as pool:  # each may time out
        found = pool.map(lambda name: lag_for(name, settings), consuming)
        lags = dict(zip(consuming, found, strict=True))
    for service, seen in zip(services, observed, strict=True):
        pid, lag = str(seen.pid or "-"), lags.get(seen.service, "-")
        rows.append((seen.name, seen.state, pid, str(service.port), lag))
    for row in rows:
        line = "  ".join(f"{cell:<18}" if i == 0 else f"{cell:<10}" for i, cell in enumerate(row))
        print(line.rstrip())
    return 0 if all_serving(observed) else 3


def logs(args: argparse.Namespace, settings: Settings) -> int:
    """Tail the logs of one instance (`projector-2`), of every instance of a service
    (`projector`), or of everything."""
    chosen: list[ManagedService] = []
    for service in all_services(settings):
        of = service.service.service if isinstance(service, AppProcess) else service.name
        if args.service in (None, service.name, of):
            chosen.append(service)
    if not chosen:
        names = [service.name for service in all_services(settings)]
        print(f"unknown service {args.service!r}; one of: {', '.join(names)}", file=sys.stderr)
        return 2
    every = [
        f for s in chosen for f in (s.log_files if isinstance(s, KafkaCluster) else [s.log_file])
    ]
    files = [str(file) for file in every if file.exists()]
    if not files:
        print(f"no logs yet in {settings.home / 'logs'}", file=sys.stderr)
        return 1
    try:
        return subprocess.call(
            ["tail", "-n", str(args.lines), *(["-F"] if args.follow else []), *files]
        )
    except KeyboardInterrupt:
        return 0


def logs_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "service", nargs="?", help="a service (all its instances) or one instance (default: all)"
    )
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    parser.add_argument("-n", "--lines", type=int, default=100, help="lines to show per file")
