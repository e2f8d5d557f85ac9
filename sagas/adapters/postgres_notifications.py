"""Which notifications the read model (public.notifications) holds, for the notifier."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from psycopg.errors import UndefinedTable
from psycopg_pool import ConnectionPool

QUERY = "SELECT notification_id FROM public.notifications WHERE notification_id = ANY(%s)"


class PostgresNotificationIndex:
    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self.pool = pool

    def known(self, notification_ids: Collection[str]) -> set[str]:
        """The ids among `notification_ids` that have a saga in the read model."""
        if not notification_ids:
            return set()
        try:
            with self.pool.connection() as conn:
                rows = conn.execute(QUERY, (list(notification_ids),)).fetchall()
        except UndefinedTable:  # the projector has not made the read model yet: none is known
            return set()
        return {notification_id for (notification_id,) in rows}
