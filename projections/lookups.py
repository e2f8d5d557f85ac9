"""The workflows' `Lookups` port on the PostgreSQL read models, with a sync psycopg connection.

It reads only the public views, like every other query, and says whether the projections
have applied given event offsets, so a workflow sees the rows of the event it reacts to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import Connection, sql
from psycopg.rows import dict_row

from sagas.workflows.evaluation import Row
from sagas.workflows.expressions import USER_FIELDS, WORKSPACE_FIELDS

# The read models a workflow may read: the lookups' views and the memberships.
LOOKUP_PROJECTIONS = ("users", "workspaces", "memberships")


def _select(view: str, fields: tuple[str, ...], key: str) -> sql.Composed:
    return sql.SQL("SELECT {} FROM {} WHERE {} = %s").format(
        sql.SQL(", ").join(map(sql.Identifier, fields)),
        sql.Identifier("public", view),
        sql.Identifier(key),
    )


_USER = _select("users", USER_FIELDS, "user_id")
_WORKSPACE = _select("workspaces", WORKSPACE_FIELDS, "workspace_id")
_APPLIED = """
    SELECT count(*) FROM public.projection_checkpoints c
    JOIN unnest(%s::int[], %s::bigint[]) AS wanted(partition, last_offset)
      ON c.partition = wanted.partition AND c.next_offset > wanted.last_offset
    WHERE c.topic = %s AND c.name = ANY(%s)
"""


class PostgresLookups:
    """Users and workspaces rows by id from the public views; None when there is none.

    It connects on first use and again after the connection broke (the error still raises).
    Autocommit: every query sees the latest committed read models.
    """

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._conn: Connection[Any] | None = None

    def _connection(self) -> Connection[Any]:
        if self._conn is None or self._conn.broken or self._conn.closed:
            self.close()
            self._conn = psycopg.connect(self.database_url, autocommit=True, connect_timeout=5)
        return self._conn

    def user(self, user_id: str) -> Row | None:
        return self._one(_USER, user_id)

    def workspace(self, workspace_id: str) -> Row | None:
        return self._one(_WORKSPACE, workspace_id)

    def _one(self, query: sql.Composed, key: str) -> Row | None:
        with self._connection().cursor(row_factory=dict_row) as cur:
            cur.execute(query, (key,))
            return cur.fetchone()

    def applied(self, topic: str, offsets: Mapping[int, int], projections: tuple[str, ...]) -> bool:
        """Whether every projection has applied `offsets` (partition -> an event's offset)."""
        if not offsets:
            return True
        partitions = sorted(offsets)
        params = (partitions, [offsets[p] for p in partitions], topic, list(projections))
        try:
            row = self._connection().execute(_APPLIED, params).fetchone()
        except psycopg.errors.UndefinedTable:
            return False  # the projector has not migrated this database yet
        return row is not None and row[0] == len(partitions) * len(set(projections))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
