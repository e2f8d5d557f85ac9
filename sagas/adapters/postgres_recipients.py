"""`Recipients` read from the users read model (public.users) in PostgreSQL."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from aggregates.user.events import ChannelAddress, QuietHours
from sagas.adapters.recipients import Recipient

QUERY = """
SELECT user_id, email, status, channels, quiet_hours
FROM public.users WHERE user_id = ANY(%s)
"""


class PostgresRecipients:
    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def find(self, user_ids: Collection[str]) -> dict[str, Recipient]:
        if not user_ids:
            return {}
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(QUERY, (list(user_ids),))
            return {row["user_id"]: _recipient(row) for row in cur.fetchall()}


def _recipient(row: Mapping[str, Any]) -> Recipient:
    hours = row["quiet_hours"]
    return Recipient(
        user_id=row["user_id"],
        email=row["email"],
        active=row["status"] == "active",
        channels=tuple(
            ChannelAddress(c["channel"], c["address"], c.get("enabled", True))
            for c in row["channels"] or ()
        ),
        quiet_hours=None
        if hours is None
        else QuietHours(hours["start"], hours["end"], hours["timezone"]),
    )
