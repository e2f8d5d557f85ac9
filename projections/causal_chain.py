"""The causal chain of one request, built from records of the log. Pure: no Kafka, no clock.

`nexus trace` and `GET /api/v1/traces/{id}` read the platform's topics (streams.causal_log)
and hand each decoded record to `entry`, which keeps only what a trace shows and links
by, so holding the whole log costs a small entry per record. `trace` then finds the
request's correlation id, gathers every record of it and, to a fixed point, everything
those records caused, and arranges them as a tree by causation:

- a command's outcome and events hang under the command (their `causation_id`);
- a workflow's notification request hangs under the event that triggered it (its
  `causation_id` is the event id), a digest item under the notification it carries;
- a saga event hangs under its notification's request, or under what caused it when that
  is in the trace. Saga events carry their notification id as correlation id, so they are
  found through the request, not through the request's correlation id;
- a dead letter hangs under the record it holds (when that decodes, its correlation and id
  are the dead letter's links); one whose bytes never decoded names no request.

Siblings are in time order, ties in log order, so a saga's steps read as they happened.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_args

from sagas.circuit.events import CircuitEvent
from sagas.notification.events import NotificationEvent
from sagas.notification.request import DigestItemSubmitted, NotificationSubmitted

Position = tuple[str, int, int]  # topic, partition, offset: unique per record
Facts = tuple[tuple[str, str], ...]
Record = Mapping[str, Any]

OUTCOME_SCHEMA, DEAD_LETTER_SCHEMA = "command.outcome", "dead_letter"  # in schemas/system/
KINDS = COMMAND, OUTCOME, EVENT, REQUEST, SAGA, DEAD_LETTER = (
    "command", "outcome", "event", "request", "saga", "dead_letter",
)  # fmt: skip
REQUEST_TYPES = frozenset({NotificationSubmitted.TYPE, DigestItemSubmitted.TYPE})
SAGA_TYPES = frozenset(c.TYPE for c in (*get_args(NotificationEvent), *get_args(CircuitEvent)))
UNKNOWN_WRITER = "?"  # a record written without the `nexus-writer` header
# Fields of a request's or saga event's data worth a glance; the rest is in `nexus tail`.
REQUEST_FACTS = ("template", "user_id", "requested_by")
SAGA_FACTS = ("channel", "attempt", "reason", "error")


@dataclass(frozen=True)
class Entry:
    """One record of the log, reduced to what a trace shows and links by."""

    kind: str  # command, outcome, event, request, saga or dead_letter
    id: str  # command or event id; `outcome:<command id>`; `dead_letter:<position>`
    type: str  # RegisterUser, user.registered, notification.delivered, command.outcome, ...
    at: datetime  # when its writer says it happened (issued, decided, occurred, failed)
    position: Position
    writer: str | None  # the process that wrote it, from the record's `nexus-writer` header
    correlation_id: str | None
    causation_id: str | None  # the id of the record that caused it, when it names one
    saga_id: str | None = None  # a request's or saga event's notification (its saga)
    facts: Facts = ()


@dataclass(frozen=True)
class Node:
    entry: Entry
    children: tuple[Node, ...] = ()


@dataclass(frozen=True)
class Trace:
    asked: str  # the id asked for: a correlation, command or notification id
    correlation_id: str
    roots: tuple[Node, ...]
    size: int  # records in the tree


def entry(
    schema: str,
    record: Record,
    position: Position,
    writer: str | None,
    held: tuple[str, Record] | None = None,
) -> Entry | None:
    """The entry of a decoded record, None for records no request causes (snapshots).
    `held`: a dead letter's own record (schema name and record), when its bytes decode."""
    if schema == OUTCOME_SCHEMA:
        return _outcome(record, position, writer)
    if schema == DEAD_LETTER_SCHEMA:
        inner = entry(*held, _source(record), None) if held else None
        return _dead_letter(record, position, writer, inner)
    if "command_id" in record:
        return _command(record, position, writer)
    if "event_id" not in record:
        return None
    return _event(record, position, writer)


def _command(r: Record, position: Position, writer: str | None) -> Entry:
    facts = (("aggregate", f"{r['aggregate_type']}/{r['aggregate_id']}"), ("actor", r["actor"]))
    return Entry(
        COMMAND,
        id=r["command_id"],
        type=r["type"],
        at=r["issued_at"],
        position=position,
        writer=writer,
        correlation_id=r["correlation_id"],
        causation_id=None,
        facts=facts,
    )


def _event(r: Record, position: Position, writer: str | None) -> Entry:
    kind = REQUEST if r["type"] in REQUEST_TYPES else SAGA if r["type"] in SAGA_TYPES else EVENT
    version = ("version", str(r["aggregate_version"]))
    data = r["data"] if isinstance(r.get("data"), Mapping) else {}
    if kind == EVENT:
        facts: Facts = (("aggregate", f"{r['aggregate_type']}/{r['aggregate_id']}"), version)
    elif kind == REQUEST:
        facts = (("notification", r["aggregate_id"]), *_picked(data, REQUEST_FACTS))
    else:
        facts = (version, *_picked(data, SAGA_FACTS))
    return Entry(
        kind,
        id=r["event_id"],
        type=r["type"],
        at=r["occurred_at"],
        position=position,
        writer=writer,
        correlation_id=r["correlation_id"],
        causation_id=r["causation_id"],
        saga_id=None if kind == EVENT else r["aggregate_id"],
        facts=facts,
    )


def _outcome(r: Record, position: Position, writer: str | None) -> Entry:
    shown = (("status", r["status"]), ("version", r["version"]), ("position", r["position"]))
    facts = tuple((k, str(v)) for k, v in (*shown, ("error", r["error_code"])) if v is not None)
    return Entry(
        OUTCOME,
        id=f"outcome:{r['command_id']}",
        type=OUTCOME_SCHEMA,
        at=r["decided_at"],
        position=position,
        writer=writer,
        correlation_id=r["correlation_id"],
        causation_id=r["command_id"],
        facts=facts,
    )


def _dead_letter(r: Record, position: Position, writer: str | None, held: Entry | None) -> Entry:
    facts = (
        ("reason", r["reason"]),
        ("consumer", r["consumer"]),
        ("source", "/".join(map(str, _source(r)))),
        ("detail", r["detail"]),
    )
    return Entry(
        DEAD_LETTER,
        id=f"dead_letter:{'/'.join(map(str, position))}",
        type=DEAD_LETTER_SCHEMA,
        at=r["failed_at"],
        position=position,
        writer=writer,
        correlation_id=held.correlation_id if held else None,
        causation_id=held.id if held else None,
        facts=facts,
    )


def _source(r: Record) -> Position:
    return (r["source_topic"], r["source_partition"], r["source_offset"])


def _picked(data: Mapping[str, Any], names: Sequence[str]) -> Facts:
    return tuple((n, str(data[n])) for n in names if data.get(n) is not None)


def trace(entries: Sequence[Entry], asked: str) -> Trace | None:
    """The causal tree of the request `asked` names; None when no record names it."""
    correlation_id = correlation_of(entries, asked)
    if correlation_id is None:
        return None
    chosen = gather(entries, correlation_id)
    return Trace(asked, correlation_id, tree(chosen), len(chosen))


def correlation_of(entries: Sequence[Entry], asked: str) -> str | None:
    """The correlation id of the request that `asked` names: a notification id names its
    request's; a command id (or an event id) the record's; else `asked` itself, if some
    record carries it as its correlation id."""
    requests = _requests(entries)
    if asked in requests:
        return requests[asked].correlation_id
    for e in entries:
        if e.id == asked or (e.kind == OUTCOME and e.causation_id == asked):
            found = e.correlation_id
            request = requests.get(found) if e.kind == SAGA and found else None
            return request.correlation_id if request else found
    return asked if any(e.correlation_id == asked for e in entries) else None


def gather(entries: Sequence[Entry], correlation_id: str) -> list[Entry]:
    """The records of one correlation and, to a fixed point, the records they caused and
    the saga events of the notifications they requested; in time order, ties in log order."""
    chosen = {e.position: e for e in entries if e.correlation_id == correlation_id}
    while True:
        sagas = {e.saga_id for e in chosen.values() if e.kind == REQUEST}
        causes = {e.id for e in chosen.values()} | sagas
        grown = {
            e.position: e
            for e in entries
            if e.position not in chosen
            and (e.causation_id in causes or (e.kind == SAGA and e.saga_id in sagas))
        }
        if not grown:
            return sorted(chosen.values(), key=lambda e: (e.at, e.position))
        chosen.update(grown)


def tree(chosen: Sequence[Entry]) -> tuple[Node, ...]:
    """`chosen` (in order) as a forest: each entry under its cause, found by `_parent`."""
    by_id: dict[str, Position] = {}
    for e in chosen:
        by_id.setdefault(e.id, e.position)
    requests = _requests(chosen)
    children: dict[Position | None, list[Entry]] = defaultdict(list)
    for e in chosen:
        children[_parent(e, by_id, requests)].append(e)

    def node(e: Entry) -> Node:
        return Node(e, tuple(node(child) for child in children[e.position]))

    return tuple(node(e) for e in children[None])


def _parent(
    e: Entry, by_id: Mapping[str, Position], requests: Mapping[str, Entry]
) -> Position | None:
    """What `e` hangs under: the record it names as its cause; the request of the notification
    it names (a digest item names the notification it holds); a saga event's request."""
    named = by_id.get(e.causation_id or "")
    if named is None and (request := requests.get(e.causation_id or "")) is not None:
        named = request.position
    if named is None and e.kind == SAGA and (request := requests.get(e.saga_id or "")):
        named = request.position
    return None if named == e.position else named


def _requests(entries: Sequence[Entry]) -> dict[str, Entry]:
    """The first request of each notification (saga) id."""
    found: dict[str, Entry] = {}
    for e in entries:
        if e.kind == REQUEST and e.saga_id is not None:
            found.setdefault(e.saga_id, e)
    return found


def trace_json(found: Trace) -> dict[str, Any]:
    """The tree as JSON: what `nexus trace --json` prints and the HTTP route answers."""
    return {
        "id": found.asked,
        "correlation_id": found.correlation_id,
        "records": found.size,
        "tree": [node_json(root) for root in found.roots],
    }


def node_json(node: Node) -> dict[str, Any]:
    e = node.entry
    topic, partition, offset = e.position
    return {
        "id": e.id,
        "kind": e.kind,
        "type": e.type,
        "at": iso(e.at),
        "writer": e.writer or UNKNOWN_WRITER,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "facts": dict(e.facts),
        "children": [node_json(child) for child in node.children],
    }


def iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds")
