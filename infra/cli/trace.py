"""`nexus trace ID [--json]`: one request's causal chain, read from the log.

ID is a correlation id, a command id or a notification id. Every command, outcome, event,
notification request, saga transition (delivery attempts included) and dead letter of the
request is printed as a tree by causation, one line each: when it happened, the process
that wrote it (the record's `nexus-writer` header, `?` without one), its kind and type, and
a few facts. The log is the trace store, so no tracing backend is needed; but every call
reads the whole log (streams.causal_log: bounded by the ends at the start and --timeout).
The tree itself is projections.causal_chain's, the same as `GET /api/v1/traces/{id}`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence

from infra.cli.saga_audit import fact_value
from infra.config.settings import Settings
from projections.causal_chain import KINDS, UNKNOWN_WRITER, Node, Trace, iso, trace, trace_json
from streams.causal_log import LogReadTimedOut, LogUnreachable, read_log

BRANCH, LAST, PIPE, SPACE = "├─ ", "└─ ", "│  ", "   "
KIND_WIDTH = max(map(len, KINDS))


def trace_command(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 1, saying why on stderr, for an id nothing in the log has or an unreadable log."""
    try:
        log = read_log(settings, args.timeout)
    except (LogUnreachable, LogReadTimedOut) as exc:
        where = settings.resolved_kafka_bootstrap
        print(f"nexus trace: cannot read the log on {where}: {exc}", file=sys.stderr)
        return 1
    found = trace(log.entries, args.id)
    if found is None:
        topics = ", ".join(log.topics) or "no topics"
        print(
            f"nexus trace: no record has {args.id} as its correlation, command or notification"
            f" id ({log.read} records read from {topics})",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps(trace_json(found), ensure_ascii=False, indent=2))
    else:
        print("\n".join(tree_lines(found)))
    return 0


def trace_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="a correlation id, a command id or a notification id")
    parser.add_argument("--json", action="store_true", help="the tree as one JSON document")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds allowed to read the log"
    )


def tree_lines(found: Trace) -> list[str]:
    """A header, then one line per record: time, writer, kind, then the type under its cause."""
    asked = "" if found.asked == found.correlation_id else f" (from {found.asked})"
    header = f"trace {found.correlation_id}{asked}: {found.size} records"
    rows = list(_rows(found.roots, "", top=True))
    width = max((len(node.entry.writer or UNKNOWN_WRITER) for node, _ in rows), default=0)
    return [header, *(_line(node, branch, width) for node, branch in rows)]


def _rows(nodes: Sequence[Node], prefix: str, top: bool) -> Iterator[tuple[Node, str]]:
    """Depth first, each node with the drawing that joins it to its cause (roots: none)."""
    for i, node in enumerate(nodes):
        last = i == len(nodes) - 1
        yield node, "" if top else prefix + (LAST if last else BRANCH)
        below = "" if top else prefix + (SPACE if last else PIPE)
        yield from _rows(node.children, below, top=False)


def _line(node: Node, branch: str, writer_width: int) -> str:
    e = node.entry
    facts = " ".join(f"{key}={fact_value(value)}" for key, value in e.facts)
    columns = (
        iso(e.at),
        f"{e.writer or UNKNOWN_WRITER:<{writer_width}}",
        f"{e.kind:<{KIND_WIDTH}}",
    )
    return "  ".join((*columns, f"{branch}{e.type}", facts)).rstrip()
