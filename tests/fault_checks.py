"""Test helper: a supervised stack, and the exact checks a fault test runs until they pass
within a bound. Each check returns what is wrong, or '' when all is well."""

from __future__ import annotations

import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import psycopg
from conftest import ARTIFACTS
from stack import ServiceProcess
from test_fault_kill import fold, read_models
from topic_reading import read_topic
from tracked_events import configured_grace_s, minute_counts, rollup_counts
from webhook_sink import Receipt, SinkLog

from infra.config.settings import Settings

TERMINAL = {"notification.completed", "notification.given_up"}


@contextmanager
def supervised_stack(
    settings: Settings, names: Sequence[str], logs: str
) -> Iterator[dict[str, ServiceProcess]]:
    """The services, each under its supervisor (`nexus run NAME --supervise`, as `make up`
    runs them), started side by side; stopped afterwards, their logs kept in
    test-artifacts/`logs`."""
    services = {name: ServiceProcess(name, settings, supervised=True) for name in names}
    try:
        with ThreadPoolExecutor(len(services)) as starting:
            for started in [starting.submit(s.start, 120) for s in services.values()]:
                started.result()
        yield services
    finally:
        with ThreadPoolExecutor(len(services)) as stopping:
            list(stopping.map(lambda service: service.stop(), services.values()))
        kept = ARTIFACTS / logs
        shutil.rmtree(kept, ignore_errors=True)
        kept.mkdir(parents=True)
        for service in services.values():
            if service.log_path.exists():
                shutil.copyfile(service.log_path, kept / service.log_path.name)


def restarts(service: ServiceProcess) -> int:
    """How often its supervisor started it again (each restart logs one line)."""
    return service.log_path.read_text(errors="replace").count("supervise: ")


def wait_healed(
    checks: dict[str, Callable[[], str]], since: float, within: float
) -> tuple[dict[str, float], dict[str, str]]:
    """Run the checks until each has passed once (then each once more, so nothing went
    wrong after it passed) or `within` seconds after `since`. Returns when each passed, in
    seconds after `since`, and what is still wrong."""
    passed: dict[str, float] = {}
    wrong: dict[str, str] = {}
    while True:
        for name, check in checks.items():
            if name not in passed:
                if problem := check():
                    wrong[name] = problem
                else:
                    passed[name] = time.monotonic() - since
                    wrong.pop(name, None)
        if not wrong:
            return passed, {name: problem for name, check in checks.items() if (problem := check())}
        if time.monotonic() > since + within:
            return passed, wrong
        time.sleep(1)


def described(wrong: dict[str, str]) -> str:
    """What is still wrong, whole: pytest shortens the repr of a dict message, not a str."""
    return "\n".join(f"{name}: {problem}" for name, problem in wrong.items())


def commands_problem(settings: Settings, accepted: list[str], aggregates: int) -> str:
    """Every 202-answered command decided exactly once; no duplicate event; versions
    contiguous; the read models equal a fold of the events topic."""
    outcomes = read_topic(settings, settings.topic("outcomes"))
    decided = Counter(o.record["command_id"] for o in outcomes)
    if missing := set(accepted) - set(decided):
        return f"{len(missing)} of {len(accepted)} acknowledged commands without outcome"
    if twice := [c for c, n in decided.items() if n > 1]:
        return f"{len(twice)} commands decided twice"
    events = [  # the anomaly watch publishes there too, versionless
        e
        for e in read_topic(settings, settings.topic("events"))
        if e.record["aggregate_type"] in ("user", "workspace")
    ]
    if len({e.record["event_id"] for e in events}) != len(events):
        return "a duplicated event"
    versions: dict[str, list[int]] = defaultdict(list)
    for stored in events:
        versions[stored.record["aggregate_id"]].append(stored.record["aggregate_version"])
    if gaps := [a for a, seen in versions.items() if seen != list(range(1, len(seen) + 1))]:
        return f"versions not contiguous for {gaps[:3]}"
    ours = {f"u{i}" for i in range(aggregates)} | {f"w{i}" for i in range(aggregates)}
    if _only(read_models(settings), ours) != _only(fold(events), ours):
        return "read models differ from the fold of the events topic"
    return ""


Models = tuple[dict[str, Any], dict[str, Any], set[tuple[str, str, str]]]


def _only(models: Models, aggregates: set[str]) -> Models:
    """The load's own users, workspaces and memberships (the webhook users have
    preferences too, which the fold does not follow)."""
    users, workspaces, members = models
    return (
        {k: v for k, v in users.items() if k in aggregates},
        {k: v for k, v in workspaces.items() if k in aggregates},
        {m for m in members if m[0] in aggregates},
    )


Sagas = dict[str, list[dict[str, Any]]]  # saga id -> its events' records, in order
# How sagas/adapters/webhook.py words a failure whose answer it never read.
UNREAD = ("timeout:", "connection error:")


def sagas(settings: Settings) -> Sagas:
    streams: Sagas = {}
    for stored in read_topic(settings, settings.topic("notifications")):
        if stored.record["aggregate_type"] == "notification":
            streams.setdefault(stored.record["aggregate_id"], []).append(stored.record)
    return streams


def ledger(settings: Settings) -> dict[str, str]:
    """ledger key (notification/channel/attempt) -> status."""
    with psycopg.connect(settings.resolved_database_url) as conn:
        rows = conn.execute("SELECT ledger_key, status FROM notification_ledger").fetchall()
    return dict(rows)


def notifications_problem(settings: Settings, ids: list[str], sink: SinkLog) -> str:
    """Every saga ended exactly once with contiguous versions; no attempt reached the sink
    twice; every delivered (notification, channel) was received exactly once by a receiver
    that deduplicates on its Idempotency-Key; the ledger agrees with what the sink saw."""
    streams = sagas(settings)
    for saga_id in ids:
        events = streams.get(saga_id, [])
        if sum(e["type"] in TERMINAL for e in events) != 1:
            return f"saga {saga_id} not ended exactly once: {[e['type'] for e in events]}"
        if [e["aggregate_version"] for e in events] != list(range(1, len(events) + 1)):
            return f"saga {saga_id} versions not contiguous"
    receipts = sink.snapshot()
    per_attempt = Counter(r.key for r in receipts)
    if twice := [k for k, n in per_attempt.items() if n > 1 or k is None]:
        return f"attempts received twice: {twice[:3]}"
    delivered = {
        f"{saga_id}/{e['data']['channel']}"
        for saga_id in ids
        for e in streams[saga_id]
        if e["type"] == "notification.delivered"
    }
    rows = ledger(settings)
    if wrong := [pair for pair in delivered if not _received_once(pair, receipts, streams)]:
        pair = wrong[0]
        seen = [(r.key, r.status) for r in receipts if r.key and r.key.startswith(pair)]
        kept = {key: status for key, status in rows.items() if key.startswith(pair)}
        story = [(e["type"], e["data"].get("error")) for e in streams[pair.split("/")[0]]]
        return f"{len(wrong)} delivered but not received exactly once: {pair} {seen} {kept} {story}"
    statuses = {r.key: r.status for r in receipts if r.key is not None}
    if unknown := set(statuses) - set(rows):
        return f"the sink saw attempts the ledger does not know: {sorted(unknown)[:3]}"
    for key, status in rows.items():
        if status == "delivered" and statuses.get(key) != 200:
            return f"{key} delivered in the ledger, not at the sink"
        if status not in ("delivered", "failed", "in_doubt"):
            return f"{key} left {status}"
    return ""


def _received_once(pair: str, receipts: list[Receipt], streams: Sagas) -> bool:
    """One accepted receipt for the delivery, as a receiver deduplicating on its
    Idempotency-Key counts them: more arrive only after an attempt whose answer the sender
    never read (a timeout, a broken connection), and that one failed retryably."""
    saga_id, channel = pair.split("/")
    unread = {
        f"{pair}/{e['data']['attempt']}"
        for e in streams[saga_id]
        if e["type"] == "notification.attempt_failed"
        and e["data"]["channel"] == channel
        and str(e["data"]["error"]).startswith(UNREAD)
    }
    accepted = [r for r in receipts if r.status == 200 and r.key and r.key.startswith(f"{pair}/")]
    if any(r.idempotency_key != pair for r in accepted):
        return False
    return len([r for r in accepted if r.key not in unread]) == 1


def rollups_problem(settings: Settings, sent: list[str], resent: Collection[str]) -> str:
    """The topic holds each event `sent` once (twice at most if the load produced it again,
    fault_loads.ProducedLoad) and nothing else, and the rollups count each record once."""
    records = [s.record for s in read_topic(settings, settings.topic("analytics"))]
    held = Counter(record["event_id"] for record in records)
    if missing := set(sent) - set(held):
        return f"{len(missing)} of {len(sent)} events sent are not in the topic"
    if foreign := set(held) - set(sent):
        return f"{len(foreign)} events in the topic were never sent"
    if twice := [id_ for id_, n in held.items() if n > (2 if id_ in resent else 1)]:
        return f"{len(twice)} events in the topic more often than sent, e.g. {twice[0]}"
    if (counted := sum(rollup_counts(settings).values())) != len(records):
        return f"{counted} of the topic's {len(records)} events counted"
    if rollup_counts(settings) != minute_counts(records, configured_grace_s(settings)):
        return "rollups differ from the topic's per-minute counts"
    return ""


def workflows_problem(settings: Settings) -> str:
    """The workflow runner asked for a welcome for every registration in the events topic
    (the request's causation is the event; a redelivery may ask twice, the saga dedups)."""
    registered = {
        stored.record["event_id"]
        for stored in read_topic(settings, settings.topic("events"))
        if stored.record["type"] == "user.registered"
    }
    welcomed = {
        stored.record["causation_id"]
        for stored in read_topic(settings, settings.topic("notification-requests"))
        if stored.record["data"]["requested_by"] == "workflow:welcome"
    }
    if missing := registered - welcomed:
        return f"{len(missing)} of {len(registered)} registrations not welcomed"
    return ""
