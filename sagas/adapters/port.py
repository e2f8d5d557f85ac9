"""The delivery ports: `Notifier` sends one rendered message on one channel and reports what
happened; `DeliveryLedger` records every attempt before it is sent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from aggregates.channels import Channel
from sagas.rendering import Rendered


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of one attempt. A provider failure is `ok=False`, never an exception;
    `retryable` says whether trying again later can help (5xx, timeouts, connection errors)."""

    ok: bool
    provider_response: str
    latency_ms: float
    retryable: bool = False
    error: str | None = None


class Notifier(Protocol):
    """Delivers a rendered notification to one address on one channel."""

    def send(
        self,
        channel: Channel,
        address: str,
        rendered: Rendered,
        timeout: float,
        ledger_key: str | None = None,
    ) -> DeliveryResult:
        """`ledger_key` names this attempt (notification/channel/attempt); channels that
        can carry keys (webhooks) pass it on, with the delivery's idempotency key."""
        ...


LedgerStatus = Literal["sending", "delivered", "failed", "in_doubt"]


@dataclass(frozen=True)
class AttemptClaim:
    """One attempt about to be sent; claimed under `ledger_key` before anything is sent."""

    ledger_key: str
    notification_id: str
    user_id: str
    channel: str
    attempt: int
    started_at: datetime


@dataclass(frozen=True)
class AttemptRecord:
    """What the ledger holds for one attempt."""

    ledger_key: str
    notification_id: str
    user_id: str
    channel: str
    attempt: int
    status: LedgerStatus
    provider_response: str | None
    error: str | None
    latency_ms: float | None
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class AttemptResult:
    """The final word on one claimed attempt."""

    ledger_key: str
    status: LedgerStatus
    provider_response: str | None
    error: str | None
    latency_ms: float | None
    finished_at: datetime


class DeliveryLedger(Protocol):
    """Every delivery attempt, keyed (notification, channel, attempt), written before the send."""

    def claim(self, claims: Sequence[AttemptClaim]) -> dict[str, AttemptRecord]:
        """Insert a `sending` row per claim unless its key exists; returns the rows that
        already existed, by key. A key in the result must not be sent again."""
        ...

    def record(self, results: Sequence[AttemptResult]) -> None:
        """Set each claimed attempt's final status; a settled row is never changed again."""
        ...

    def attempts(self, keys: Sequence[str]) -> dict[str, AttemptRecord]:
        """The rows for these keys, where they exist."""
        ...
