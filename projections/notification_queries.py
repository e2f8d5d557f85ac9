"""Queries on notifications for the gateway: the read model, the ledger and saga histories.

Like `projections.queries`, they read only public views and tables and answer JSON-ready
dicts. A user's notifications are paged newest first with an opaque keyset cursor.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from projections.queries import JsonDict, json_ready

ATTEMPT_COLUMNS = (
    "ledger_key, channel, attempt, status, provider_response, error, latency_ms,"
    " started_at, finished_at"
)


class InvalidCursor(ValueError):
    """A cursor that this module did not hand out."""


async def _one(conn: AsyncConnection[Any], query: str, params: Any) -> JsonDict | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        row = await cur.fetchone()
    return None if row is None else json_ready(row)


async def _all(conn: AsyncConnection[Any], query: str, params: Any) -> list[JsonDict]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return [json_ready(row) for row in await cur.fetchall()]


async def user_exists(conn: AsyncConnection[Any], user_id: str) -> bool:
    found = await _one(conn, "SELECT 1 AS found FROM public.users WHERE user_id = %s", (user_id,))
    return found is not None


async def get_notification(conn: AsyncConnection[Any], notification_id: str) -> JsonDict | None:
    """The notification's row plus `attempts` from the delivery ledger, by channel, attempt."""
    row = await _one(
        conn, "SELECT * FROM public.notifications WHERE notification_id = %s", (notification_id,)
    )
    if row is not None:
        row["attempts"] = await _all(
            conn,
            f"SELECT {ATTEMPT_COLUMNS} FROM public.notification_ledger"
            " WHERE notification_id = %s ORDER BY channel, attempt",
            (notification_id,),
        )
    return row


async def list_user_notifications(
    conn: AsyncConnection[Any], user_id: str, limit: int, cursor: str | None
) -> tuple[list[JsonDict], str | None]:
    """(up to `limit` notifications newest first, the cursor of the next page or None).

    Raises InvalidCursor for a cursor not made here.
    """
    where = "user_id = %s"
    params: list[Any] = [user_id]
    if cursor is not None:
        requested_at, notification_id = decode_cursor(cursor)
        where += " AND (requested_at, notification_id) < (%s, %s)"
        params += [requested_at, notification_id]
    rows = await _all(
        conn,
        f"SELECT * FROM public.notifications WHERE {where}"
        " ORDER BY requested_at DESC, notification_id DESC LIMIT %s",
        (*params, limit + 1),
    )
    more = len(rows) > limit
    items = rows[:limit]
    return items, encode_cursor(items[-1]) if more else None


async def saga_history(conn: AsyncConnection[Any], saga_id: str) -> list[JsonDict]:
    """The saga's events in version order; [] for an unknown saga."""
    return await _all(
        conn,
        "SELECT version, event_id, type, occurred_at, actor, correlation_id, causation_id, data"
        " FROM public.saga_events WHERE saga_id = %s ORDER BY version",
        (saga_id,),
    )


def encode_cursor(row: JsonDict) -> str:
    """An opaque cursor after `row`: its (requested_at, notification_id), URL-safe."""
    raw = json.dumps([row["requested_at"], row["notification_id"]], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        requested_at, notification_id = json.loads(raw)
        if not isinstance(requested_at, str) or not isinstance(notification_id, str):
            raise TypeError("a cursor holds two strings")
        return datetime.fromisoformat(requested_at), notification_id
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise InvalidCursor(f"not a cursor of this listing: {exc}") from None
