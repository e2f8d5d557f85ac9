"""The gateway's memory of the event ids published over `POST /api/v1/events` (PostgreSQL).

Not a projection: the table is written by the gateway, in the transaction that publishes,
so that a repeated `event_id` is answered from it instead of being written to Kafka twice.

One request is one transaction: `claim` inserts a row per event (primary key `event_id`,
rows in id order so two batches never wait on each other in a cycle); the gateway sends the
claimed events to Kafka and, once Kafka acknowledged them, `record`s their positions and
commits. A concurrent request with one of the ids waits on the uncommitted row, then finds
it (`known`) if the first committed, or claims it if the first rolled back (Kafka refused).
The window left: a gateway that dies after Kafka's acknowledgment and before the commit
leaves no row, so a retry of that request is published again.

Rows are kept for at least REMEMBERED_FOR; `forget_older` drops older ones, after which
the same id is a new event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from psycopg import AsyncConnection, Connection

TABLE = "public.published_events"
REMEMBERED_FOR = timedelta(days=7)

DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    event_id text PRIMARY KEY,
    publisher text NOT NULL,
    digest text NOT NULL,
    position text,
    published_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS published_events_published_at ON {TABLE} (published_at);
"""

CLAIM_SQL = f"""
INSERT INTO {TABLE} (event_id, publisher, digest)
SELECT c.event_id, %s, c.digest FROM unnest(%s::text[], %s::text[]) AS c(event_id, digest)
ORDER BY c.event_id
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""

KNOWN_SQL = f"SELECT event_id, publisher, digest, position FROM {TABLE} WHERE event_id = ANY(%s)"

RECORD_SQL = f"""
UPDATE {TABLE} AS p SET position = r.position
FROM unnest(%s::text[], %s::text[]) AS r(event_id, position)
WHERE p.event_id = r.event_id
"""

FORGET_SQL = f"DELETE FROM {TABLE} WHERE published_at < now() - %s"


@dataclass(frozen=True)
class Remembered:
    """An event id published before: by whom, what was sent (its digest), and where it is."""

    publisher: str
    digest: str
    position: str


def ensure_published_events(conn: Connection[Any]) -> None:
    """Create the table unless it exists; run by projections.migrations under its lock."""
    conn.execute(DDL)


async def claim(
    conn: AsyncConnection[Any], publisher: str, digests: Sequence[tuple[str, str]]
) -> set[str]:
    """Insert `(event_id, digest)` rows not known yet; the ids inserted (in a transaction)."""
    ids, hashes = [d[0] for d in digests], [d[1] for d in digests]
    async with conn.cursor() as cur:
        await cur.execute(CLAIM_SQL, (publisher, ids, hashes))
        return {row[0] for row in await cur.fetchall()}


async def known(conn: AsyncConnection[Any], ids: Sequence[str]) -> dict[str, Remembered]:
    async with conn.cursor() as cur:
        await cur.execute(KNOWN_SQL, (list(ids),))
        rows = await cur.fetchall()
    return {event_id: Remembered(who, digest, position) for event_id, who, digest, position in rows}


async def record(conn: AsyncConnection[Any], positions: dict[str, str]) -> None:
    await conn.execute(RECORD_SQL, (list(positions), list(positions.values())))


async def forget_older(conn: AsyncConnection[Any], age: timedelta = REMEMBERED_FOR) -> None:
    await conn.execute(FORGET_SQL, (age,))
