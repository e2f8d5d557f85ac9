"""Which event types only the platform's own deciders may write, derived from their registries.

A decided aggregate has one writer, the command processor: an event of its type written by
anyone else (a forged `user.registered`, a `workspace.member_added` skipping the rules in
`access.py`) would fork its history and bypass its decider. So every type of an aggregate in
`aggregates.registry.DECIDERS` (`user.*`, `workspace.*`, unknown names included) and every
type a decider emits is the command processor's. The sagas are deciders too: their events
(`notification.*`, `channel.*`) and the requests that start them live on the notifier's own
topics, so those aggregate types are the notifier's. `analytics.*` events are the anomaly
watch's findings, which the dashboard and the operators' alerts trust, so a forged one would
be a false alarm. Everything else under `schemas/events/` is a service's own to publish
(`EventBus.publish`, `POST /api/v1/events`). Pure.
"""

from __future__ import annotations

from typing import Any, get_args

from aggregates.registry import DECIDERS
from sagas.circuit.events import CircuitEvent
from sagas.notification.events import NotificationEvent
from sagas.notification.request import DigestItemSubmitted, NotificationSubmitted

COMMAND_PROCESSOR, NOTIFIER, ANOMALY_WATCH = (
    "the command processor", "the notifier", "the anomaly watch",
)  # fmt: skip


def _types(*classes: Any) -> frozenset[str]:
    return frozenset(cls.TYPE for cls in classes)


DECIDED_TYPES = frozenset(t for d in DECIDERS.values() for t in d.event_types)
SAGA_TYPES = _types(
    *get_args(NotificationEvent),
    *get_args(CircuitEvent),
    NotificationSubmitted,
    DigestItemSubmitted,
)
# By aggregate type (the part before the first dot), so a type added later is covered too.
_OWNERS = {
    **{aggregate: NOTIFIER for aggregate in {t.split(".", 1)[0] for t in SAGA_TYPES}},
    **{aggregate: COMMAND_PROCESSOR for aggregate in DECIDERS},
    "analytics": ANOMALY_WATCH,  # streams/anomaly_watch.py (above this layer: named, not imported)
}


def owner_of(event_type: str) -> str | None:
    """Which platform process alone writes `event_type`; None if services may publish it."""
    if event_type in DECIDED_TYPES:
        return COMMAND_PROCESSOR
    return _OWNERS.get(event_type.split(".", 1)[0])
