"""Read-model queries for the HTTP gateway and the CLI, on a psycopg AsyncConnection.

They read only the public views, never a version schema, so a replay's swap is invisible.
Results are plain dicts of JSON-ready values: datetimes become ISO-8601 UTC strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

JsonDict = dict[str, Any]


def json_ready(row: Mapping[str, Any]) -> JsonDict:
    """A row with JSON-ready values: datetimes as ISO-8601 UTC with milliseconds."""
    return {key: _json_value(value) for key, value in row.items()}


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return value


Query = sql.Composed | str


async def _one(conn: AsyncConnection[Any], query: Query, params: Any) -> JsonDict | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        row = await cur.fetchone()
    return None if row is None else json_ready(row)


async def _all(conn: AsyncConnection[Any], query: Query, params: Any) -> list[JsonDict]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return [json_ready(row) for row in await cur.fetchall()]


async def get_user(conn: AsyncConnection[Any], user_id: str) -> JsonDict | None:
    """The user's row plus `workspaces`: [{workspace_id, role}] by workspace id."""
    user = await _one(conn, "SELECT * FROM public.users WHERE user_id = %s", (user_id,))
    if user is not None:
        user["workspaces"] = await _all(
            conn,
            "SELECT workspace_id, role FROM public.memberships"
            " WHERE user_id = %s ORDER BY workspace_id",
            (user_id,),
        )
    return user


async def workspace_ids_of(conn: AsyncConnection[Any], user_id: str) -> set[str]:
    rows = await _all(
        conn, "SELECT workspace_id FROM public.memberships WHERE user_id = %s", (user_id,)
    )
    return {row["workspace_id"] for row in rows}


async def list_users(
    conn: AsyncConnection[Any],
    *,
    workspace_id: str | None,
    limit: int,
    after: str | None,
    visible_to: str | None = None,
) -> list[JsonDict]:
    """Users by user_id after `after` (keyset pagination), only `workspace_id`'s if given,
    and only `visible_to` and those sharing a workspace with it if that is given."""
    where: list[sql.Composable] = [sql.SQL("TRUE")]
    params: list[Any] = []
    if visible_to is not None:
        where.append(_VISIBLE)
        params.extend((visible_to, visible_to))
    source = sql.SQL("public.users u")
    if workspace_id is not None:
        source = sql.SQL("public.users u JOIN public.memberships m ON m.user_id = u.user_id")
        where.append(sql.SQL("m.workspace_id = %s"))
        params.append(workspace_id)
    if after is not None:
        where.append(sql.SQL("u.user_id > %s"))
        params.append(after)
    query = sql.SQL("SELECT u.* FROM {} WHERE {} ORDER BY u.user_id LIMIT %s").format(
        source, sql.SQL(" AND ").join(where)
    )
    return await _all(conn, query, (*params, limit))


_VISIBLE = sql.SQL(
    "(u.user_id = %s OR EXISTS (SELECT 1 FROM public.memberships mine"
    " JOIN public.memberships theirs ON theirs.workspace_id = mine.workspace_id"
    " WHERE mine.user_id = %s AND theirs.user_id = u.user_id))"
)


async def get_workspace(conn: AsyncConnection[Any], workspace_id: str) -> JsonDict | None:
    """The workspace's row plus `members`: [{user_id, role, added_at}] by user id."""
    workspace = await _one(
        conn, "SELECT * FROM public.workspaces WHERE workspace_id = %s", (workspace_id,)
    )
    if workspace is not None:
        workspace["members"] = await _all(
            conn,
            "SELECT user_id, role, added_at FROM public.memberships"
            " WHERE workspace_id = %s ORDER BY user_id",
            (workspace_id,),
        )
    return workspace


async def get_command_outcome(conn: AsyncConnection[Any], command_id: str) -> JsonDict | None:
    return await _one(
        conn, "SELECT * FROM public.command_outcomes WHERE command_id = %s", (command_id,)
    )


async def caught_up(
    conn: AsyncConnection[Any], projections: list[str], topic: str, partition: int, offset: int
) -> bool:
    """Whether every named projection's live version has applied `offset` of the partition."""
    names = sorted(set(projections))
    row = await _one(
        conn,
        "SELECT count(DISTINCT name) AS n FROM public.projection_checkpoints"
        " WHERE name = ANY(%s) AND topic = %s AND partition = %s AND next_offset > %s",
        (names, topic, partition, offset),
    )
    return row is not None and row["n"] == len(names)


async def projection_status(conn: AsyncConnection[Any]) -> list[JsonDict]:
    """[{name, live_version, checkpoints: [{topic, partition, next_offset}]}] by name."""
    registry = await _all(
        conn, "SELECT name, live_version FROM public.projection_registry ORDER BY name", ()
    )
    checkpoints = await _all(
        conn,
        "SELECT name, topic, partition, next_offset FROM public.projection_checkpoints"
        " ORDER BY name, topic, partition",
        (),
    )
    for entry in registry:
        entry["checkpoints"] = [
            {k: c[k] for k in ("topic", "partition", "next_offset")}
            for c in checkpoints
            if c["name"] == entry["name"]
        ]
    return registry
