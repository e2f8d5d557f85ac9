"""The `nexus` command: run the whole stack locally (`up`, `down`, `status`, `logs`) or one service.

Each subcommand is a `Subcommand` entry in `SUBCOMMANDS`: a name, a help line, a handler
`(args, settings) -> exit code` and an optional function that adds its arguments. To add one,
write those two functions and append an entry; `main` builds the parser from the list.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from infra.cli import analytics as analytics_cli
from infra.cli import demo, stack, tools
from infra.cli import trace as trace_cli
from infra.config.settings import Settings
from infra.local.processes import ProcessError
from infra.local.supervise import supervise

Handler = Callable[[argparse.Namespace, Settings], int]

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
    Subcommand("up", "start Kafka, PostgreSQL, Prometheus and the Nexus services", stack.up),
    Subcommand("down", "stop everything `up` started", stack.down),
    Subcommand("status", "show which services run, their pids, ports and lag", stack.status),
    Subcommand("logs", "show service logs", stack.logs, stack.logs_arguments),
    Subcommand("run", "run one service in the foreground", run, _run_arguments),
    Subcommand("prepare", "create the JWT secret, topics and database schema", stack.prepare),
    Subcommand(
        "install",
        "install Java, Maven, the Kafka jars, PostgreSQL and Prometheus",
        stack.install,
        stack.install_arguments,
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
