"""The users read model: one row per user, folded from the `user.*` events."""

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

USERS = Table(
    name="users",
    columns=(
        ("user_id", "text NOT NULL"),
        ("email", "text NOT NULL"),
        ("name", "text NOT NULL"),
        ("locale", "text"),
        ("status", "text NOT NULL"),
        ("deactivation_reason", "text"),
        ("channels", "jsonb NOT NULL DEFAULT '[]'"),
        ("quiet_hours", "jsonb"),
        ("version", "bigint NOT NULL"),
        ("registered_at", "timestamptz NOT NULL"),
        ("updated_at", "timestamptz NOT NULL"),
    ),
    key=("user_id",),
)


def _key(event: Event) -> Key:
    return (event["aggregate_id"],)


def _registered(rows: RowCache, event: Event) -> None:
    if rows.get(USERS.name, _key(event)) is not None:
        return
    data = event["data"]
    row = {
        "user_id": event["aggregate_id"],
        "email": data["email"],
        "name": data["name"],
        "locale": data.get("locale"),
        "status": "active",
        "deactivation_reason": None,
        "channels": [],
        "quiet_hours": None,
        "registered_at": event["occurred_at"],
    }
    rows.put(USERS.name, _key(event), envelope_update(event, row))


def _update(rows: RowCache, event: Event, **changes: object) -> None:
    row = rows.get(USERS.name, _key(event))
    if row is not None and advances(event, row):
        rows.put(USERS.name, _key(event), envelope_update(event, row, **changes))


def _profile_updated(rows: RowCache, event: Event) -> None:
    data = event["data"]
    changed = {field: data[field] for field in ("name", "email") if data.get(field) is not None}
    _update(rows, event, **changed)


def _preferences_set(rows: RowCache, event: Event) -> None:
    data = event["data"]
    channels = [dict(channel) for channel in data["channels"]]
    _update(rows, event, channels=channels, quiet_hours=data.get("quiet_hours"))


def _deactivated(rows: RowCache, event: Event) -> None:
    reason = event["data"].get("reason")
    _update(rows, event, status="deactivated", deactivation_reason=reason)


def _touches(event: Event) -> Iterable[tuple[str, Key]]:
    return ((USERS.name, _key(event)),)


USERS_PROJECTION = Projection(
    name="users",
    topic="events",
    tables=(USERS,),
    handlers={
        "user.registered": _registered,
        "user.profile_updated": _profile_updated,
        "user.preferences_set": _preferences_set,
        "user.deactivated": _deactivated,
    },
    touches=_touches,
)
