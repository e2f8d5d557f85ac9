"""The notifications read model, folded from the notification sagas' events.

`notifications` holds one row per saga: where it stands and which channels delivered.
`saga_events` holds every saga event by (saga, version), for a saga's history. The
circuit-breaker events that share the topic are not handled, so they are never decoded.
"""

from __future__ import annotations

from collections.abc import Iterable

from projections.model import (
    Event,
    Key,
    Projection,
    Row,
    RowCache,
    Table,
    advances,
    envelope_update,
)
from schemas.timestamps import from_epoch_ms

NOTIFICATIONS = Table(
    name="notifications",
    columns=(
        ("notification_id", "text NOT NULL"),
        ("user_id", "text NOT NULL"),
        ("template", "text NOT NULL"),
        ("status", "text NOT NULL"),
        ("critical", "boolean NOT NULL"),
        ("routes", "jsonb NOT NULL DEFAULT '[]'"),
        ("delivered_channels", "jsonb NOT NULL DEFAULT '[]'"),
        ("reason", "text"),
        ("idempotency_key", "text"),
        ("requested_at", "timestamptz NOT NULL"),
        ("deferred_until", "timestamptz"),
        ("completed_at", "timestamptz"),
        ("version", "bigint NOT NULL"),
        ("updated_at", "timestamptz NOT NULL"),
    ),
    key=("notification_id",),
    indexes=(("user_id", "requested_at"),),
)

SAGA_EVENTS = Table(
    name="saga_events",
    columns=(
        ("saga_id", "text NOT NULL"),
        ("version", "bigint NOT NULL"),
        ("event_id", "text NOT NULL"),
        ("type", "text NOT NULL"),
        ("occurred_at", "timestamptz NOT NULL"),
        ("actor", "text NOT NULL"),
        ("correlation_id", "text NOT NULL"),
        ("causation_id", "text"),
        ("data", "jsonb NOT NULL"),
    ),
    key=("saga_id", "version"),
)

TERMINAL = frozenset({"completed", "given_up", "digested"})


def _key(event: Event) -> Key:
    return (event["aggregate_id"],)


def _record(rows: RowCache, event: Event) -> None:
    """Every handled event lands in the history; a replayed one rewrites the same row."""
    row = {
        "saga_id": event["aggregate_id"],
        "version": event["aggregate_version"],
        "event_id": event["event_id"],
        "type": event["type"],
        "occurred_at": event["occurred_at"],
        "actor": event["actor"],
        "correlation_id": event["correlation_id"],
        "causation_id": event.get("causation_id"),
        "data": event["data"],
    }
    rows.put(SAGA_EVENTS.name, (row["saga_id"], row["version"]), row)


def _requested(rows: RowCache, event: Event) -> None:
    _record(rows, event)
    if rows.get(NOTIFICATIONS.name, _key(event)) is not None:
        return
    data = event["data"]
    row = {
        "notification_id": event["aggregate_id"],
        "user_id": data["user_id"],
        "template": data["template"],
        "status": "pending" if data.get("collect_until") is None else "collecting",
        "critical": data["critical"],
        "routes": [{"chain": list(route["chain"])} for route in data["routes"]],
        "delivered_channels": [],
        "reason": None,
        "idempotency_key": data.get("idempotency_key"),
        "requested_at": from_epoch_ms(data["requested_at"]),
        "deferred_until": None,
        "completed_at": None,
    }
    rows.put(NOTIFICATIONS.name, _key(event), envelope_update(event, row))


def _update(rows: RowCache, event: Event, **changes: object) -> None:
    """Apply `changes` once, in version order; a finished saga keeps its status and reason."""
    _record(rows, event)
    row = rows.get(NOTIFICATIONS.name, _key(event))
    if row is None or not advances(event, row):
        return
    if row["status"] in TERMINAL:
        changes = {k: v for k, v in changes.items() if k == "delivered_channels"}
    rows.put(NOTIFICATIONS.name, _key(event), envelope_update(event, row, **changes))


def _deferred(rows: RowCache, event: Event) -> None:
    data = event["data"]
    until = from_epoch_ms(data["until"])
    _update(rows, event, status="deferred", deferred_until=until, reason=data["reason"])


def _resumed(rows: RowCache, event: Event) -> None:
    _update(rows, event, status="pending", deferred_until=None, reason=None)


def _delivered(rows: RowCache, event: Event) -> None:
    row = rows.get(NOTIFICATIONS.name, _key(event))
    channels = _with(row, [event["data"]["channel"]])
    _update(rows, event, delivered_channels=channels)


def _completed(rows: RowCache, event: Event) -> None:
    row = rows.get(NOTIFICATIONS.name, _key(event))
    channels = _with(row, event["data"]["channels"])
    _update(
        rows,
        event,
        status="completed",
        delivered_channels=channels,
        reason=None,
        deferred_until=None,
        completed_at=event["occurred_at"],
    )


def _given_up(rows: RowCache, event: Event) -> None:
    finished = {"deferred_until": None, "completed_at": event["occurred_at"]}
    _update(rows, event, status="given_up", reason=event["data"]["reason"], **finished)


def _digested(rows: RowCache, event: Event) -> None:
    """Its reason names the digest that carries it, whose own row says how that went."""
    reason = f"digest {event['data']['digest_id']}"
    _update(rows, event, status="digested", reason=reason, completed_at=event["occurred_at"])


def _digest_closed(rows: RowCache, event: Event) -> None:
    _update(rows, event, status="pending")


def _progressed(rows: RowCache, event: Event) -> None:
    """Rendering, attempts, retries and fallbacks change no column but advance the version."""
    _update(rows, event)


def _with(row: Row | None, channels: Iterable[str]) -> list[str]:
    current = row["delivered_channels"] if row is not None else []
    return list(dict.fromkeys([*current, *channels]))


def _touches(event: Event) -> Iterable[tuple[str, Key]]:
    return ((NOTIFICATIONS.name, _key(event)),)


NOTIFICATIONS_PROJECTION = Projection(
    name="notifications",
    topic="notifications",
    tables=(NOTIFICATIONS, SAGA_EVENTS),
    handlers={
        "notification.requested": _requested,
        "notification.deferred": _deferred,
        "notification.resumed": _resumed,
        "notification.rendered": _progressed,
        "notification.attempt_started": _progressed,
        "notification.delivered": _delivered,
        "notification.attempt_failed": _progressed,
        "notification.retry_scheduled": _progressed,
        "notification.fell_back": _progressed,
        "notification.completed": _completed,
        "notification.given_up": _given_up,
        "notification.digested": _digested,
        "notification.digest_item_added": _progressed,
        "notification.digest_item_forwarded": _progressed,
        "notification.digest_closed": _digest_closed,
    },
    touches=_touches,
)
