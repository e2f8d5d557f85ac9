"""Test helper: count the projector's applications of each event (NEXUS_PROJECTION_AUDIT),
and SIGKILL it while one of its batch transactions is open."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
from psycopg import sql
from topic_reading import Stored

from infra.config.settings import Settings
from projections import versions
from projections.catalog import PROJECTIONS, PROJECTOR_PROJECTIONS, schema_name

Position = tuple[int, int]  # (partition, offset)


def live_schema(conn: psycopg.Connection[Any], name: str) -> str:
    version = versions.live_version(conn, name)
    assert version is not None, f"projection {name} is not migrated"
    return schema_name(name, version)


def applications(settings: Settings, name: str) -> Counter[Position]:
    """How many committed batches applied each event to the live version of `name`."""
    with psycopg.connect(settings.resolved_database_url) as conn:
        rows = conn.execute(
            'SELECT partition, "offset", count(*) FROM projection_applications'
            " WHERE version_schema = %s GROUP BY 1, 2",
            (live_schema(conn, name),),
        ).fetchall()
    return Counter({(int(p), int(o)): int(n) for p, o, n in rows})


def applied_once_problems(
    settings: Settings,
    topics: dict[str, list[Stored]],
    names: Iterable[str] = PROJECTOR_PROJECTIONS,
) -> list[str]:
    """What differs from "each projection applied each event it handles exactly once"."""
    problems = []
    for name in names:
        projection = PROJECTIONS[name]
        handled = {
            (s.partition, s.offset)
            for s in topics.get(settings.topic(projection.topic), [])
            if projection.handles(s.schema)
        }
        counts = applications(settings, name)
        twice = sorted(p for p, n in counts.items() if n > 1)
        if twice:
            problems.append(f"{name}: {len(twice)} events applied more than once: {twice[:5]}...")
        if missing := sorted(handled - counts.keys()):
            problems.append(f"{name}: {len(missing)} events never applied: {missing[:5]}...")
        if foreign := counts.keys() - handled:
            problems.append(f"{name}: {len(foreign)} applications of no such event")
    return problems


def kill_inside_transaction(
    settings: Settings, projections: Iterable[str], kill: Callable[[], None], timeout: float = 30.0
) -> int:
    """Lock the live tables of `projections` against writes, wait until a projector batch is
    blocked on them inside its open transaction, `kill()` the projector, then let go. Returns
    the blocked backend's pid; the transaction it held can never commit (its client is gone).
    Several projections: whichever the load is feeding at the moment gets blocked."""
    with psycopg.connect(settings.resolved_database_url) as conn:
        tables = sql.SQL(", ").join(
            sql.Identifier(live_schema(conn, name), table.name)
            for name in projections
            for table in PROJECTIONS[name].tables
        )
        with conn.transaction():
            conn.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(tables))
            blocked = _wait_blocked_by(settings, conn.info.backend_pid, timeout)
            kill()
    return blocked


def _wait_blocked_by(settings: Settings, locker: int, timeout: float) -> int:
    """Watched from a connection of its own in autocommit: within one transaction,
    pg_stat_activity is a snapshot taken at its first read and never shows a newcomer."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(settings.resolved_database_url, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            row = watcher.execute(
                "SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))"
                " AND xact_start IS NOT NULL",
                (locker,),
            ).fetchone()
            if row is not None:
                return int(row[0])
            time.sleep(0.02)
    raise AssertionError(f"no projector batch was blocked inside a transaction in {timeout} s")


def backend_gone(settings: Settings, pid: int) -> bool:
    with psycopg.connect(settings.resolved_database_url) as conn:
        row = conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return row is None
