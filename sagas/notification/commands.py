"""What goes into the notification saga (commands for `decide`) and what comes out of `react`.

Inbound commands carry every input the rules need: the user's preferences, the clock
reading (`*_at`, epoch ms) and the jitter in [0, 1) drawn by the infrastructure.
Outbound values are instructions for the worker: `RenderNotification` and
`DeliverAttempt` go to ports, `StartAttempt` goes back into `decide`, and a `Timer`
is stored durably and comes back as `FireTimer` when due.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from aggregates.user.events import ChannelAddress, QuietHours
from sagas.notification.events import DigestItem, RenderedContent


@dataclass(frozen=True)
class Fallback:
    from_channel: str
    to_channel: str


DEFAULT_FALLBACKS = (
    Fallback("push", "email"),
    Fallback("sms", "email"),
    Fallback("slack", "email"),
    Fallback("discord", "email"),
)


@dataclass(frozen=True)
class DeliveryPolicy:
    """Retry and fallback rules; copied onto `notification.requested` so replays never drift."""

    max_attempts: int = 3
    base_delay_ms: int = 1_000
    max_delay_ms: int = 300_000
    fallbacks: tuple[Fallback, ...] = DEFAULT_FALLBACKS


TimerKind = Literal["deadline", "retry", "quiet_hours", "circuit_cool_down", "digest_window"]


@dataclass(frozen=True)
class Timer:
    """A durable wake-up. (saga_id, kind, channel, attempt) identifies it: store it idempotently."""

    saga_id: str
    due_at: int
    kind: TimerKind
    channel: str | None = None
    attempt: int | None = None


@dataclass(frozen=True)
class StartNotification:
    NAME: ClassVar[str] = "StartNotification"
    notification_id: str
    user_id: str
    template: str
    data: str
    requested_at: int
    deadline: int
    preferences: tuple[ChannelAddress, ...]
    quiet_hours: QuietHours | None = None
    channels: tuple[str, ...] | None = None
    idempotency_key: str | None = None
    critical: bool = False
    policy: DeliveryPolicy = DeliveryPolicy()
    # A low-priority template: collapse into the user's digest, listed by this summary.
    digest_window_ms: int | None = None
    digest_summary: str = ""


@dataclass(frozen=True)
class CollectDigestItem:
    """Add an item to the digest `digest_id`, opening it (as a notification of the digest
    template, collecting until `window_end`) when it is the first."""

    NAME: ClassVar[str] = "CollectDigestItem"
    digest_id: str
    user_id: str
    template: str
    item: DigestItem
    window_end: int
    window_ms: int
    received_at: int
    deadline: int
    preferences: tuple[ChannelAddress, ...]
    quiet_hours: QuietHours | None = None
    policy: DeliveryPolicy = DeliveryPolicy()


@dataclass(frozen=True)
class RecordRendering:
    NAME: ClassVar[str] = "RecordRendering"
    contents: tuple[RenderedContent, ...]


@dataclass(frozen=True)
class RecordRenderFailure:
    NAME: ClassVar[str] = "RecordRenderFailure"
    error: str


@dataclass(frozen=True)
class StartAttempt:
    NAME: ClassVar[str] = "StartAttempt"
    notification_id: str
    channel: str
    attempt: int


@dataclass(frozen=True)
class RecordDelivery:
    NAME: ClassVar[str] = "RecordDelivery"
    channel: str
    attempt: int
    provider_response: str
    latency_ms: int


@dataclass(frozen=True)
class RecordAttemptFailure:
    NAME: ClassVar[str] = "RecordAttemptFailure"
    channel: str
    attempt: int
    error: str
    retryable: bool
    failed_at: int
    jitter: float


@dataclass(frozen=True)
class FireTimer:
    NAME: ClassVar[str] = "FireTimer"
    timer: Timer
    fired_at: int


NotificationCommand = (
    StartNotification
    | CollectDigestItem
    | RecordRendering
    | RecordRenderFailure
    | StartAttempt
    | RecordDelivery
    | RecordAttemptFailure
    | FireTimer
)


@dataclass(frozen=True)
class RenderNotification:
    """For the renderer port: render `template` with `data` for every channel listed."""

    notification_id: str
    template: str
    channels: tuple[str, ...]
    data: str


@dataclass(frozen=True)
class DeliverAttempt:
    """For the notifier port: write the ledger row under `ledger_key`, then send."""

    notification_id: str
    user_id: str
    channel: str
    attempt: int
    ledger_key: str
    content_ref: str
    deadline: int


@dataclass(frozen=True)
class ForwardToDigest:
    """For the request log: hand a low-priority notification to the digest that collects it.

    It travels as a request keyed by `digest_id`, so it reaches the digest's own partition
    (and worker) in the same transaction as the event that decided it."""

    digest_id: str
    user_id: str
    window_end: int
    item: DigestItem


# What a worker taking a saga over may still owe it; a forward is never owed (it is
# written in the transaction of the event that decided it).
ResumeOutput = RenderNotification | StartAttempt | DeliverAttempt | Timer
SagaOutput = ResumeOutput | ForwardToDigest
