"""The workspaces read model: one row per workspace, folded from the `workspace.*` events."""

from __future__ import annotations

from collections.abc import Iterable

from projections.model import (
    Event,
    Key,
    Projection,
    RowCache,
    Table,
    advances,
    envelope_update,
)

WORKSPACES = Table(
    name="workspaces",
    columns=(
        ("workspace_id", "text NOT NULL"),
        ("name", "text NOT NULL"),
        ("owner_id", "text NOT NULL"),
        ("status", "text NOT NULL"),
        ("archive_reason", "text"),
        ("version", "bigint NOT NULL"),
        ("created_at", "timestamptz NOT NULL"),
        ("updated_at", "timestamptz NOT NULL"),
    ),
    key=("workspace_id",),
    indexes=(("owner_id",),),
)


def _key(event: Event) -> Key:
    return (event["aggregate_id"],)


def _created(rows: RowCache, event: Event) -> None:
    if rows.get(WORKSPACES.name, _key(event)) is not None:
        return
    row = {
        "workspace_id": event["aggregate_id"],
        "name": event["data"]["name"],
        "owner_id": event["data"]["owner_id"],
        "status": "active",
        "archive_reason": None,
        "created_at": event["occurred_at"],
    }
    rows.put(WORKSPACES.name, _key(event), envelope_update(event, row))


def _update(rows: RowCache, event: Event, **changes: object) -> None:
    row = rows.get(WORKSPACES.name, _key(event))
    if row is not None and advances(event, row):
        rows.put(WORKSPACES.name, _key(event), envelope_update(event, row, **changes))


def _renamed(rows: RowCache, event: Event) -> None:
    _update(rows, event, name=event["data"]["name"])


def _archived(rows: RowCache, event: Event) -> None:
    _update(rows, event, status="archived", archive_reason=event["data"].get("reason"))


def _bumped(rows: RowCache, event: Event) -> None:
    """Membership events change no column here but still advance version and updated_at."""
    _update(rows, event)


def _touches(event: Event) -> Iterable[tuple[str, Key]]:
    return ((WORKSPACES.name, _key(event)),)


WORKSPACES_PROJECTION = Projection(
    name="workspaces",
    topic="events",
    tables=(WORKSPACES,),
    handlers={
        "workspace.created": _created,
        "workspace.renamed": _renamed,
        "workspace.archived": _archived,
        "workspace.member_added": _bumped,
        "workspace.member_removed": _bumped,
    },
    touches=_touches,
)
