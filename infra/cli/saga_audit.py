"""`nexus saga audit`: one notification saga's events as a timeline, with integrity checks.

Pure: it takes the decoded records (envelope plus data, as on the saga topic, in offset
order) and returns lines. Reading them is streams.aggregate_history's job and the command
itself is infra.cli.tools'. The final status is folded with the saga's own `evolve`, so
the audit and the running saga cannot disagree on what the events mean.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_args

from aggregates.codec import DataError, from_data
from sagas.notification.decider import evolve
from sagas.notification.events import NotificationEvent
from sagas.notification.state import NotificationState, initial_state
from schemas.timestamps import from_epoch_ms

Record = Mapping[str, Any]
Facts = list[tuple[str, object]]

EVENT_TYPES: dict[str, Any] = {cls.TYPE: cls for cls in get_args(NotificationEvent)}


@dataclass(frozen=True)
class Audit:
    """What the records say: integrity problems (none when sound) and the folded state."""

    problems: tuple[str, ...]
    state: NotificationState


def audit(records: Sequence[Record]) -> Audit:
    problems = integrity_problems([r["aggregate_version"] for r in records])
    problems += duplicate_problems(records)
    state, unfit = fold(records)
    return Audit(tuple(problems + unfit), state)


def integrity_problems(versions: Sequence[int]) -> list[str]:
    """Gaps from v1 on and versions that go backwards, in offset order."""
    missing = set(range(1, max(versions, default=0) + 1)) - set(versions)
    problems = [f"gap: {run} missing" for run in _runs(missing)]
    problems += [
        f"out of order: v{after} after v{before}"
        for before, after in zip(versions, versions[1:], strict=False)
        if after < before
    ]
    return problems


def duplicate_problems(records: Sequence[Record]) -> list[str]:
    counts = Counter(r["aggregate_version"] for r in records)
    problems = []
    for version, count in sorted(counts.items()):
        if count > 1:
            ids = {r["event_id"] for r in records if r["aggregate_version"] == version}
            what = "the same event" if len(ids) == 1 else f"{len(ids)} different events"
            problems.append(f"duplicate: v{version} written {count} times ({what})")
    return problems


def _runs(missing: set[int]) -> list[str]:
    runs: list[list[int]] = []
    for version in sorted(missing):
        if runs and runs[-1][-1] == version - 1:
            runs[-1].append(version)
        else:
            runs.append([version])
    return [f"v{r[0]}" if len(r) == 1 else f"v{r[0]}..v{r[-1]}" for r in runs]


def fold(records: Sequence[Record]) -> tuple[NotificationState, list[str]]:
    """The saga's state after its records, and problems with records it cannot fold."""
    state, unfit = initial_state, []
    for record in records:
        version, kind = record["aggregate_version"], record["type"]
        cls = EVENT_TYPES.get(kind)
        if cls is None:
            unfit.append(f"unknown type: v{version} {kind}")
            continue
        try:
            state = evolve(state, from_data(cls, record["data"]))
        except DataError as exc:
            unfit.append(f"unreadable: v{version} {kind}: {exc}")
    return state, unfit


def report_lines(
    aggregate_id: str, where: str, records: Sequence[Record], undecodable: int = 0
) -> list[str]:
    """The text report: a header, one line per event, then the summary."""
    lines = [f"saga {aggregate_id}: {len(records)} events on {where}"]
    width = max((len(record["type"]) for record in records), default=0)  # align the facts
    lines += [timeline_line(record, width) for record in records]
    return lines + summary_lines(records, undecodable)


def summary_lines(records: Sequence[Record], undecodable: int = 0) -> list[str]:
    """Integrity (one line per problem, or ok) and the final status."""
    result = audit(records)
    problems = list(result.problems)
    if undecodable:
        problems.append(f"undecodable: {undecodable} messages with this key skipped")
    lines = [f"integrity: {problem}" for problem in problems]
    if not lines:
        lines.append(f"integrity: ok (v1..v{len(records)} contiguous)")
    return [*lines, status_line(result.state)]


def status_line(state: NotificationState) -> str:
    until = f" until {iso_ms(state.deferred_until)}" if state.deferred_until is not None else ""
    return f"status: {state.status}{until} ({'terminal' if state.terminal else 'not terminal'})"


def timeline_line(record: Record, type_width: int = 0) -> str:
    when = record["occurred_at"].isoformat(timespec="milliseconds")
    describe = FACTS.get(record["type"])
    pairs = describe(record["data"]) if describe else []
    facts = " ".join(f"{k}={fact_value(v)}" for k, v in pairs)
    version = f"v{record['aggregate_version']}"
    return f"{version:<4}  {when}  {record['type']:<{type_width}}  {facts}".rstrip()


def json_line(record: Record) -> str:
    """The whole record as one line of JSON, datetimes in ISO 8601."""
    return json.dumps(record, default=_json_default, ensure_ascii=False)


def iso_ms(epoch_ms: int) -> str:
    return from_epoch_ms(epoch_ms).isoformat(timespec="milliseconds")


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def fact_value(value: object) -> str:
    """`key=value` text for a fact: plain when it can be, else a JSON string."""
    if isinstance(value, bool):
        return str(value).lower()
    text = str(value)
    plain = text and not any(c.isspace() or c in "\"'=" for c in text)
    return text if plain else json.dumps(text, ensure_ascii=False)


def _channels(items: Sequence[Mapping[str, Any]]) -> str:
    return ",".join(item["channel"] for item in items)


def _attempt(d: Record) -> Facts:
    return [("channel", d["channel"]), ("attempt", d["attempt"])]


FACTS: dict[str, Callable[[Record], Facts]] = {
    "notification.requested": lambda d: [
        ("user", d["user_id"]),
        ("template", d["template"]),
        ("routes", ",".join(">".join(route["chain"]) for route in d["routes"])),
        ("critical", d["critical"]),
        ("max_attempts", d["max_attempts"]),
        ("deadline", iso_ms(d["deadline"])),
    ],
    "notification.deferred": lambda d: [("until", iso_ms(d["until"])), ("reason", d["reason"])],
    "notification.resumed": lambda d: [("at", iso_ms(d["resumed_at"]))],
    "notification.rendered": lambda d: [("channels", _channels(d["contents"]))],
    "notification.attempt_started": _attempt,
    "notification.delivered": lambda d: [
        *_attempt(d),
        ("latency", f"{d['latency_ms']}ms"),
        ("response", d["provider_response"]),
    ],
    "notification.attempt_failed": lambda d: [
        *_attempt(d),
        ("error", d["error"]),
        ("retryable", d["retryable"]),
    ],
    "notification.retry_scheduled": lambda d: [*_attempt(d), ("due", iso_ms(d["due_at"]))],
    "notification.fell_back": lambda d: [
        ("from", d["from_channel"]),
        ("to", d["to_channel"]),
        ("reason", d["reason"]),
    ],
    "notification.completed": lambda d: [("channels", ",".join(d["channels"]))],
    "notification.given_up": lambda d: [("reason", d["reason"])],
    "notification.digested": lambda d: [
        ("digest", d["digest_id"]),
        ("window_end", iso_ms(d["window_end"])),
    ],
    "notification.digest_item_added": lambda d: [("item", d["item"]["notification_id"])],
    "notification.digest_item_forwarded": lambda d: [
        ("item", d["item"]["notification_id"]),
        ("to", d["digest_id"]),
    ],
    "notification.digest_closed": lambda d: [("items", d["items"])],
}
