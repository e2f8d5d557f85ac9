"""The `Notifier` port: send one rendered message on one channel, report what happened."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sagas.rendering import Channel, Rendered


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
        self, channel: Channel, address: str, rendered: Rendered, timeout: float
    ) -> DeliveryResult: ...
