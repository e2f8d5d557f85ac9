"""Events of the notification saga, mirroring the `notification.*` Avro schemas field for field.

Every time is epoch milliseconds (UTC). Template data travels as a JSON string so that
the event stays a plain, hashable value and decodes with `aggregates.codec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class Route:
    """One required delivery: the primary channel first, then its fallbacks in order."""

    chain: tuple[str, ...]


@dataclass(frozen=True)
class RenderedContent:
    channel: str
    content_ref: str
    size_bytes: int


@dataclass(frozen=True)
class NotificationRequested:
    TYPE: ClassVar[str] = "notification.requested"
    notification_id: str
    user_id: str
    template: str
    requested_channels: tuple[str, ...] | None
    routes: tuple[Route, ...]
    data: str
    idempotency_key: str | None
    critical: bool
    requested_at: int
    deadline: int
    max_attempts: int
    base_delay_ms: int
    max_delay_ms: int
    collect_until: int | None = None  # a digest: it collects items until then
    digest_id: str | None = None  # a low-priority notification: it goes into this digest


@dataclass(frozen=True)
class DigestItem:
    """One low-priority notification folded into a digest, with its one-line summary."""

    notification_id: str
    template: str
    summary: str


@dataclass(frozen=True)
class NotificationDigested:
    """A low-priority notification went into the user's digest instead of going out alone."""

    TYPE: ClassVar[str] = "notification.digested"
    digest_id: str
    window_end: int
    summary: str


@dataclass(frozen=True)
class NotificationDigestItemAdded:
    TYPE: ClassVar[str] = "notification.digest_item_added"
    item: DigestItem


@dataclass(frozen=True)
class NotificationDigestItemForwarded:
    """An item that reached a digest already closed, passed on to the digest open now."""

    TYPE: ClassVar[str] = "notification.digest_item_forwarded"
    item: DigestItem
    digest_id: str
    window_end: int


@dataclass(frozen=True)
class NotificationDigestClosed:
    TYPE: ClassVar[str] = "notification.digest_closed"
    items: int


@dataclass(frozen=True)
class NotificationDeferred:
    TYPE: ClassVar[str] = "notification.deferred"
    until: int
    reason: str


@dataclass(frozen=True)
class NotificationResumed:
    TYPE: ClassVar[str] = "notification.resumed"
    resumed_at: int


@dataclass(frozen=True)
class NotificationRendered:
    TYPE: ClassVar[str] = "notification.rendered"
    contents: tuple[RenderedContent, ...]


@dataclass(frozen=True)
class NotificationAttemptStarted:
    TYPE: ClassVar[str] = "notification.attempt_started"
    channel: str
    attempt: int
    ledger_key: str


@dataclass(frozen=True)
class NotificationDelivered:
    TYPE: ClassVar[str] = "notification.delivered"
    channel: str
    attempt: int
    provider_response: str
    latency_ms: int


@dataclass(frozen=True)
class NotificationAttemptFailed:
    TYPE: ClassVar[str] = "notification.attempt_failed"
    channel: str
    attempt: int
    error: str
    retryable: bool
    failed_at: int
    jitter: float


@dataclass(frozen=True)
class NotificationRetryScheduled:
    TYPE: ClassVar[str] = "notification.retry_scheduled"
    channel: str
    attempt: int
    due_at: int


@dataclass(frozen=True)
class NotificationFellBack:
    TYPE: ClassVar[str] = "notification.fell_back"
    from_channel: str
    to_channel: str
    reason: str


@dataclass(frozen=True)
class NotificationCompleted:
    TYPE: ClassVar[str] = "notification.completed"
    channels: tuple[str, ...]


@dataclass(frozen=True)
class NotificationGivenUp:
    TYPE: ClassVar[str] = "notification.given_up"
    reason: str


NotificationEvent = (
    NotificationRequested
    | NotificationDigested
    | NotificationDigestItemAdded
    | NotificationDigestItemForwarded
    | NotificationDigestClosed
    | NotificationDeferred
    | NotificationResumed
    | NotificationRendered
    | NotificationAttemptStarted
    | NotificationDelivered
    | NotificationAttemptFailed
    | NotificationRetryScheduled
    | NotificationFellBack
    | NotificationCompleted
    | NotificationGivenUp
)
