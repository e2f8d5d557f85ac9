"""The memberships read model: one row per (workspace, user), from the membership events."""

from __future__ import annotations

from collections.abc import Iterable

from projections.model import Event, Key, Projection, RowCache, Table

MEMBERSHIPS = Table(
    name="memberships",
    columns=(
        ("workspace_id", "text NOT NULL"),
        ("user_id", "text NOT NULL"),
        ("role", "text NOT NULL"),
        ("added_at", "timestamptz NOT NULL"),
        ("version", "bigint NOT NULL"),
    ),
    key=("workspace_id", "user_id"),
    indexes=(("user_id",),),
)


def _key(event: Event) -> Key:
    return (event["aggregate_id"], event["data"]["user_id"])


def _is_stale(event: Event, rows: RowCache) -> bool:
    row = rows.get(MEMBERSHIPS.name, _key(event))
    return row is not None and event["aggregate_version"] <= row["version"]


def _added(rows: RowCache, event: Event) -> None:
    if _is_stale(event, rows):
        return
    row = {
        "workspace_id": event["aggregate_id"],
        "user_id": event["data"]["user_id"],
        "role": event["data"]["role"],
        "added_at": event["occurred_at"],
        "version": event["aggregate_version"],
    }
    rows.put(MEMBERSHIPS.name, _key(event), row)


def _removed(rows: RowCache, event: Event) -> None:
    if rows.get(MEMBERSHIPS.name, _key(event)) is not None and not _is_stale(event, rows):
        rows.delete(MEMBERSHIPS.name, _key(event))


def _touches(event: Event) -> Iterable[tuple[str, Key]]:
    return ((MEMBERSHIPS.name, _key(event)),)


MEMBERSHIPS_PROJECTION = Projection(
    name="memberships",
    topic="events",
    tables=(MEMBERSHIPS,),
    handlers={
        "workspace.member_added": _added,
        "workspace.member_removed": _removed,
    },
    touches=_touches,
)
