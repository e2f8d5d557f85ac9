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
from dataclasses import dataclass

from infra.cli import analytics as analytics_cli
from infra.cli import demo, tools
from infra.config.settings import Settings
from infra.local.kafka_server import ensure_kafka_jars
from infra.local.postgres_server import ensure_postgres_installed
from infra.local.processes import ProcessError, ensure_command, ensure_compose, ensure_secret_file
from infra.local.services import (
    AppProcess,
    ManagedService,
    all_services,
    app_services,
    infrastructure,
    lag_for,
)
from infra.local.supervise import supervise
from projections.migrations import migrate
from streams.kafka.topics import ensure_topics

Handler = Callable[[argparse.Namespace, Settings], int]

INFRA_READY_TIMEOUT_S = 60.0
APP_READY_TIMEOUT_S = 120.0
APP_STOP_TIMEOUT_S = 20.0
INFRA_STOP_TIMEOUT_S = 60.0

# Services with a consumer lag to show.
CONSUMERS = ("command-processor", "projector", "notifier", "workflows", "analytics")

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
    """Install what `up` and the tests need: Java, Maven, the Kafka jars, PostgreSQL."""
    print(f"kafka jars: {ensure_kafka_jars(settings)}")
    print(f"postgres:   {ensure_postgres_installed()}")
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
    settings.home.mkdir(parents=True, exist_ok=True)
    infra = infrastructure(settings)
    if any(service.name == "kafka" for service in infra):
        ensure_kafka_jars(settings)
    if any(service.name == "postgres" for service in infra):
        ensure_postgres_installed()
    _start(infra, INFRA_READY_TIMEOUT_S)
    prepare(args, settings)
    _start(
        [AppProcess(service, settings.home) for service in app_services(settings)],
        APP_READY_TIMEOUT_S,
    )
    _print_urls(settings)
    return 0


def _start(services: Sequence[ManagedService], timeout: float) -> None:
    for service in services:
        already = service.pid() is not None
        service.start()
        print(f"{service.name:<18} {'already running' if already else 'started'}")
    for service in services:
        service.wait_ready(timeout)


def _print_urls(settings: Settings) -> None:
    print("\nNexus is up:")
    gateway = f"http://{settings.gateway_host}:{settings.gateway_port}"
    workers = [s for s in app_services(settings) if s.name != "gateway"]
    rows = [("gateway", gateway)] + [(s.name, s.health_url) for s in workers]
    rows.append(("kafka", settings.resolved_kafka_bootstrap))
    rows.append(("postgres", _hide_password(settings.resolved_database_url)))
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
    """Stop app services first (they flush to Kafka/Postgres), then the infrastructure."""
    for service in reversed(all_services(settings)):
        timeout = APP_STOP_TIMEOUT_S if isinstance(service, AppProcess) else INFRA_STOP_TIMEOUT_S
        stopped = service.stop(timeout)
        print(f"{service.name:<18} {'stopped' if stopped else 'not running'}")
    return 0


def status(args: argparse.Namespace, settings: Settings) -> int:
    """Print one row per service; exit 0 when all run, 3 otherwise."""
    rows = [("SERVICE", "STATE", "PID", "PORT", "LAG")]
    if settings.kafka_bootstrap:
        rows.append(("kafka", "external", "-", settings.kafka_bootstrap, "-"))
    if settings.database_url:
        rows.append(("postgres", "external", "-", "-", "-"))
    all_up = True
    for service in all_services(settings):
        pid = service.pid()
        all_up &= pid is not None
        lag = lag_for(service.name, settings) if service.name in CONSUMERS else "-"
        state = "up" if pid else "down"
        rows.append((service.name, state, str(pid or "-"), str(service.port), lag))
    for row in rows:
        line = "  ".join(f"{cell:<18}" if i == 0 else f"{cell:<9}" for i, cell in enumerate(row))
        print(line.rstrip())
    return 0 if all_up else 3


def logs(args: argparse.Namespace, settings: Settings) -> int:
    services = {service.name: service for service in all_services(settings)}
    if args.service and args.service not in services:
        print(f"unknown service {args.service!r}; one of: {', '.join(services)}", file=sys.stderr)
        return 2
    chosen = [services[args.service]] if args.service else list(services.values())
    files = [str(s.log_file) for s in chosen if s.log_file.exists()]
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
    parser.add_argument("service", nargs="?", help="one service (default: all)")
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
    Subcommand("up", "start Kafka, PostgreSQL and the Nexus services", up),
    Subcommand("down", "stop everything `up` started", down),
    Subcommand("status", "show which services run, their pids, ports and lag", status),
    Subcommand("logs", "show service logs", logs, _logs_arguments),
    Subcommand("run", "run one service in the foreground", run, _run_arguments),
    Subcommand("prepare", "create the JWT secret, topics and database schema", prepare),
    Subcommand(
        "install", "install Java, Maven, the Kafka jars and PostgreSQL", install, _install_arguments
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
        return handler(args, Settings())
    except ProcessError as exc:
        print(f"nexus {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
