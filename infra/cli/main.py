"""The `nexus` command: run the whole stack locally (`up`, `down`, `status`, `logs`) or one service.

Each subcommand is a `Subcommand` entry in `SUBCOMMANDS`: a name, a help line, a handler
`(args, settings) -> exit code` and an optional function that adds its arguments. To add one,
write those two functions and append an entry; `main` builds the parser from the list.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pydantic import ValidationError

from infra.cli import analytics as analytics_cli
from infra.cli import demo, tools
from infra.cli import trace as trace_cli
from infra.config.consumers import CONSUMER_GROUPS
from infra.config.settings import Settings
from infra.local.kafka_cluster import KafkaCluster
from infra.local.kafka_server import ensure_kafka_jars
from infra.local.postgres_server import ensure_postgres_installed
from infra.local.processes import ProcessError, ensure_command, ensure_compose, ensure_secret_file
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
from infra.local.supervise import supervise
from projections.migrations import migrate
from streams.kafka.topics import ensure_topics

Handler = Callable[[argparse.Namespace, Settings], int]

INFRA_READY_TIMEOUT_S = 60.0
APP_READY_TIMEOUT_S = 120.0
APP_STOP_TIMEOUT_S = 20.0
INFRA_STOP_TIMEOUT_S = 60.0

# Services with a consumer lag to show: the projector's is kept in PostgreSQL.
CONSUMERS = ("projector", *CONSUMER_GROUPS)

# Foreground entry points, imported only when run: each module has `run(settings) -> None`.
RUNNERS = {
    "command-processor": "streams.command_processor",
    "projector": "projections.projector",
    "workflows": "streams.workflows.service",
    "notifier": "streams.notifier.service",
    "analytics": "streams.analytics.service",
    "gateway": "gateway.main",
}


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    pass


@dataclass(frozen=True)
class Subcommand:
    name: str
    help: str
    handler: Handler
    add_arguments: Callable[[argparse.ArgumentParser], None] = _no_arguments


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


def _install_arguments(parser: argparse.ArgumentParser) -> None:
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


def _logs_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "service", nargs="?", help="a service (all its instances) or one instance (default: all)"
    )
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    parser.add_argument("-n", "--lines", type=int, default=100, help="lines to show per file")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run one service in the foreground (what `up` starts detached, supervised)."""
    if args.supervise:
        return supervise([sys.argv[0], "run", args.service])
    module = importlib.import_module(RUNNERS[args.service])
    module.run(settings)
    return 0


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("service", choices=sorted(RUNNERS))
    parser.add_argument(
        "--supervise", action="store_true", help="restart the service whenever it crashes"
    )


SUBCOMMANDS: list[Subcommand] = [
    Subcommand("up", "start Kafka, PostgreSQL, Prometheus and the Nexus services", up),
    Subcommand("down", "stop everything `up` started", down),
    Subcommand("status", "show which services run, their pids, ports and lag", status),
    Subcommand("logs", "show service logs", logs, _logs_arguments),
    Subcommand("run", "run one service in the foreground", run, _run_arguments),
    Subcommand("prepare", "create the JWT secret, topics and database schema", prepare),
    Subcommand(
        "install",
        "install Java, Maven, the Kafka jars, PostgreSQL and Prometheus",
        install,
        _install_arguments,
    ),
    Subcommand("token", "print a signed JWT for local use", tools.token, tools.token_arguments),
    Subcommand("topics", "list the platform's topics and message counts", tools.topics),
    Subcommand(
        "publish", "publish one event through the EventBus", tools.publish, tools.publish_arguments
    ),
    Subcommand("tail", "print a topic's messages as JSON lines", tools.tail, tools.tail_arguments),
    Subcommand(
        "replay",
        "rebuild a projection from offset 0 and swap it in",
        tools.replay,
        tools.replay_arguments,
    ),
    Subcommand(
        "schemas",
        "check schema compatibility or list schemas",
        tools.schemas,
        tools.schemas_arguments,
    ),
    Subcommand(
        "templates",
        "render every notification template with its sample data",
        tools.templates,
        tools.templates_arguments,
    ),
    Subcommand(
        "saga",
        "audit a notification saga from its topic: timeline, gaps, status",
        tools.saga,
        tools.saga_arguments,
    ),
    Subcommand(
        "trace",
        "show one request's commands, events, sagas and dead letters from the log, as a tree",
        trace_cli.trace_command,
        trace_cli.trace_arguments,
    ),
    Subcommand(
        "analytics",
        "print refused analytics items, or resubmit those the current plan accepts",
        analytics_cli.analytics,
        analytics_cli.analytics_arguments,
    ),
    Subcommand(
        "demo",
        "generate realistic analytics traffic (with incidents) for the dashboard",
        demo.demo,
        demo.demo_arguments,
    ),
]


def build_parser(subcommands: Sequence[Subcommand] = SUBCOMMANDS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nexus", description="Run the Nexus stack locally or one of its services."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in subcommands:
        sub = commands.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(sub)
        sub.set_defaults(handler=command.handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        settings = Settings()
    except ValidationError as exc:  # say which NEXUS_* variable is wrong, without a traceback
        errors = "\n".join(f"  {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"nexus {args.command}: invalid settings:\n{errors}", file=sys.stderr)
        return 2
    try:
        return handler(args, settings)
    except ProcessError as exc:
        print(f"nexus {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
