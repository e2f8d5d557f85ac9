"""A request for a notification (`notification.submitted`) from HTTP, `notify()` or a workflow.

The request is not a saga event: it is the input the saga worker starts a saga from. Its
id is derived from the idempotency key, so asking twice with one key names one saga, and
the saga's decider turns the second `StartNotification` into nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from sagas.notification.events import DigestItem

# Fixed forever: changing it would give old idempotency keys new notification ids.
ID_NAMESPACE = uuid.UUID("8c1e5d2a-6f0b-4c3e-9a57-2d1f0e9b7c44")
MAX_IDEMPOTENCY_KEY = 200


@dataclass(frozen=True)
class NotificationSubmitted:
    TYPE: ClassVar[str] = "notification.submitted"
    notification_id: str
    user_id: str
    template: str
    channels: tuple[str, ...] | None
    data: str
    idempotency_key: str | None
    requested_by: str
    submitted_at: int


@dataclass(frozen=True)
class DigestItemSubmitted:
    """A low-priority notification handed to its user's digest; the notifier writes it,
    keyed by digest id, so it reaches the worker that owns the digest."""

    TYPE: ClassVar[str] = "notification.digest_item_submitted"
    digest_id: str
    user_id: str
    window_end: int
    item: DigestItem


def notification_id_for(requested_by: str, user_id: str, idempotency_key: str) -> str:
    """The id of a keyed request, scoped to who asks and for whom."""
    return str(uuid.uuid5(ID_NAMESPACE, "\x1f".join((requested_by, user_id, idempotency_key))))


def submission(
    *,
    user_id: str,
    template: str,
    data: Mapping[str, Any],
    requested_by: str,
    submitted_at: int,
    channels: tuple[str, ...] | None = None,
    idempotency_key: str | None = None,
    notification_id: str | None = None,
) -> NotificationSubmitted:
    """Build a request. Its id is `notification_id` when given (workflows and unkeyed callers
    pass their own; fresh ids are drawn at the edge), else derived from the idempotency key."""
    if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
        raise ValueError(f"idempotency_key must have 1 to {MAX_IDEMPOTENCY_KEY} characters")
    if notification_id is None:
        if idempotency_key is None:
            raise ValueError("a request without an idempotency key needs a notification_id")
        notification_id = notification_id_for(requested_by, user_id, idempotency_key)
    return NotificationSubmitted(
        notification_id=notification_id,
        user_id=user_id,
        template=template,
        channels=None if channels is None else tuple(dict.fromkeys(channels)),
        data=json.dumps(dict(data), separators=(",", ":"), sort_keys=True),
        idempotency_key=idempotency_key,
        requested_by=requested_by,
        submitted_at=submitted_at,
    )
