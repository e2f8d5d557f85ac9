"""The delivery ledger in PostgreSQL: one row per attempt, claimed before anything is sent.

The ledger is the worker's own record of what it sent, not a projection: it cannot be
rebuilt from events, so it lives in one unversioned table, `public.notification_ledger`.
Every method is one round of batch SQL however many attempts it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from psycopg import Connection
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from sagas.adapters.port import (
    AttemptClaim,
    AttemptRecord,
    AttemptResult,
    LedgerStatus,
)

LEDGER_TABLE = "public.notification_ledger"
# Taken while creating the table: CREATE TABLE IF NOT EXISTS still races with itself.
LEDGER_LOCK = 0x6E78_6C65_6467  # "nxledg"

LEDGER_DDL = f"""
CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (
    ledger_key text PRIMARY KEY,
    notification_id text NOT NULL,
    user_id text NOT NULL,
    channel text NOT NULL,
    attempt integer NOT NULL,
    status text NOT NULL
        CHECK (status IN ('sending', 'delivered', 'failed', 'in_doubt')),
    provider_response text,
    error text,
    latency_ms double precision,
    started_at timestamptz NOT NULL,
    finished_at timestamptz
);
CREATE INDEX IF NOT EXISTS notification_ledger_notification_id_idx
    ON {LEDGER_TABLE} (notification_id);
CREATE INDEX IF NOT EXISTS notification_ledger_user_id_idx
    ON {LEDGER_TABLE} (user_id)
"""

COLUMNS = (
    "ledger_key, notification_id, user_id, channel, attempt, status,"
    " provider_response, error, latency_ms, started_at, finished_at"
)

CLAIM_SQL = f"""
INSERT INTO {LEDGER_TABLE}
    (ledger_key, notification_id, user_id, channel, attempt, status, started_at)
SELECT k, n, u, c, a, 'sending', s
FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::int[], %s::timestamptz[])
    AS t(k, n, u, c, a, s)
ON CONFLICT (ledger_key) DO NOTHING
RETURNING ledger_key
"""

RECORD_SQL = f"""
UPDATE {LEDGER_TABLE} AS l
SET status = r.status, provider_response = r.provider_response, error = r.error,
    latency_ms = r.latency_ms, finished_at = r.finished_at
FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::float8[], %s::timestamptz[])
    AS r(ledger_key, status, provider_response, error, latency_ms, finished_at)
WHERE l.ledger_key = r.ledger_key AND l.status = 'sending'
"""

SELECT_SQL = f"SELECT {COLUMNS} FROM {LEDGER_TABLE} WHERE ledger_key = ANY(%s::text[])"


def ensure_ledger(conn: Connection[Any]) -> None:
    """Create the ledger table and its indexes unless they exist (idempotent, concurrent-safe)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LEDGER_LOCK,))
        conn.execute(LEDGER_DDL)


class PostgresLedger:
    """`DeliveryLedger` on a psycopg connection pool; each call is one transaction."""

    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self.pool = pool

    def claim(self, claims: Sequence[AttemptClaim]) -> dict[str, AttemptRecord]:
        unique = list({c.ledger_key: c for c in reversed(claims)}.values())
        if not unique:
            return {}
        columns = [
            [c.ledger_key for c in unique],
            [c.notification_id for c in unique],
            [c.user_id for c in unique],
            [c.channel for c in unique],
            [c.attempt for c in unique],
            [c.started_at for c in unique],
        ]
        with self.pool.connection() as conn, conn.transaction():
            inserted = {key for (key,) in conn.execute(CLAIM_SQL, columns).fetchall()}
            existing = [c.ledger_key for c in unique if c.ledger_key not in inserted]
            return _select(conn, existing) if existing else {}

    def record(self, results: Sequence[AttemptResult]) -> None:
        # The first result for a key is its final word, as it would be across two calls.
        unique = list({r.ledger_key: r for r in reversed(results)}.values())
        if any(r.status == "sending" for r in unique):
            raise ValueError("an attempt's result cannot be 'sending'")
        if not unique:
            return
        columns = [
            [r.ledger_key for r in unique],
            [r.status for r in unique],
            [r.provider_response for r in unique],
            [r.error for r in unique],
            [None if r.latency_ms is None else float(r.latency_ms) for r in unique],
            [r.finished_at for r in unique],
        ]
        with self.pool.connection() as conn, conn.transaction():
            conn.execute(RECORD_SQL, columns)

    def attempts(self, keys: Sequence[str]) -> dict[str, AttemptRecord]:
        if not keys:
            return {}
        with self.pool.connection() as conn:
            return _select(conn, list(dict.fromkeys(keys)))


def _select(conn: Connection[Any], keys: list[str]) -> dict[str, AttemptRecord]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(SELECT_SQL, (keys,))
        return {row["ledger_key"]: _record(row) for row in cur.fetchall()}


def _record(row: dict[str, Any]) -> AttemptRecord:
    return AttemptRecord(
        ledger_key=row["ledger_key"],
        notification_id=row["notification_id"],
        user_id=row["user_id"],
        channel=row["channel"],
        attempt=row["attempt"],
        status=cast(LedgerStatus, row["status"]),
        provider_response=row["provider_response"],
        error=row["error"],
        latency_ms=row["latency_ms"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )
