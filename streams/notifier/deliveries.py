"""Sends attempts: claim each in the ledger, send new claims on a thread pool, collect results.

The ledger row is written before the send, under the attempt's unique key. A key that is
already there is never sent again: its recorded outcome is reused, and a row still marked
`sending` (its worker died during the send) becomes `in_doubt` and counts as a failure
that is not retried, because the provider may well have received it. That window, between
the provider accepting and the ledger recording, is the one place a message can be lost
to the saga's view; it is never sent twice.
"""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import structlog

from aggregates.channels import Channel
from sagas.adapters.port import (
    AttemptClaim,
    AttemptRecord,
    AttemptResult,
    DeliveryLedger,
    DeliveryResult,
    Notifier,
)
from sagas.adapters.recipients import Recipients
from sagas.notification.commands import DeliverAttempt
from sagas.rendering import TemplateError
from sagas.runtime.contents import RenderedContents
from sagas.runtime.engine import Saga
from streams.notifier.traces import SagaTraces

log = structlog.get_logger()
IN_DOUBT = "outcome unknown: a worker stopped during the send; not sent again"
NO_ADDRESS = "no address for this channel"


@dataclass(frozen=True)
class Finished:
    """One attempt's outcome; `recorded`: the ledger holds it; `sent`: it went to the pool."""

    delivery: DeliverAttempt
    result: DeliveryResult
    recorded: bool
    sent: bool = False


class DeliveryDesk:
    def __init__(
        self,
        notifier: Notifier,
        ledger: DeliveryLedger,
        recipients: Recipients,
        contents: RenderedContents,
        timeouts: Mapping[Channel, float],
        concurrency: int,
        clock: Callable[[], datetime],
        traces: SagaTraces | None = None,
    ) -> None:
        self.notifier, self.ledger, self.recipients = notifier, ledger, recipients
        self.traces = traces or SagaTraces()
        self.contents, self.timeouts, self.clock = contents, timeouts, clock
        self.concurrency = concurrency
        self.in_flight = 0
        self.waiting: deque[DeliverAttempt] = deque()
        self._done: queue.SimpleQueue[Finished] = queue.SimpleQueue()
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="send")

    def close(self) -> None:
        """Send nothing more; wait for the sends in flight so their outcomes can be kept."""
        self.waiting.clear()
        self._pool.shutdown(wait=True)

    def dispatch(self, deliveries: list[DeliverAttempt]) -> None:
        """Queue attempts; they are claimed only when a sender is free to take them."""
        self.waiting.extend(deliveries)

    def pump(self, sagas: Mapping[str, Saga]) -> None:
        """Claim as many waiting attempts as there are free senders, and send them.

        Claiming just before sending keeps the claimed-but-unsent set as small as the
        pool: after a crash only those can be in doubt, not the whole backlog. So an
        attempt that cannot be sent (no address) is recorded as failed before this returns,
        and one whose saga moved to another worker is not claimed: its new owner sends it.
        """
        free = self.concurrency - self.in_flight
        taken = [self.waiting.popleft() for _ in range(min(free, len(self.waiting)))]
        batch = [d for d in taken if d.notification_id in sagas]
        if not batch:
            return
        existing = self.ledger.claim([_claim(d, self.clock()) for d in batch])
        recipients = self.recipients.find({d.user_id for d in batch})
        unsendable: list[Finished] = []
        for delivery in batch:
            if delivery.ledger_key in existing:
                self._done.put(self._settled(delivery, existing[delivery.ledger_key]))
                continue
            recipient = recipients.get(delivery.user_id)
            address = recipient.address(delivery.channel) if recipient else None
            if address is None:
                unsendable.append(_failed(delivery, NO_ADDRESS, retryable=False, recorded=True))
                continue
            self.in_flight += 1
            self._pool.submit(self._send, delivery, address, sagas[delivery.notification_id])
        if unsendable:
            self.ledger.record([_result(f, self.clock()) for f in unsendable])
            for finished in unsendable:
                self._done.put(finished)

    def forget(self, owned: Mapping[str, Saga]) -> None:
        """Drop waiting attempts of sagas no longer owned; their new owner resumes them."""
        self.waiting = deque(d for d in self.waiting if d.notification_id in owned)

    @property
    def busy(self) -> bool:
        return self.in_flight > 0 or bool(self.waiting)

    @property
    def backlogged(self) -> bool:
        """Whether attempts already wait for every sender: more requests would only queue."""
        return len(self.waiting) >= self.concurrency

    def finished(self) -> list[Finished]:
        """Outcomes collected since the last call; records new ones in the ledger first."""
        done: list[Finished] = []
        while not self._done.empty():
            done.append(self._done.get_nowait())
        unrecorded = [f for f in done if not f.recorded]
        self.in_flight -= sum(1 for f in done if f.sent)
        if unrecorded:
            finished_at = self.clock()
            self.ledger.record([_result(f, finished_at) for f in unrecorded])
        return done

    def _send(self, delivery: DeliverAttempt, address: str, saga: Saga) -> None:
        """On a sender thread; the span is current there, so a webhook carries its context."""
        name = f"deliver {delivery.channel}"
        with self.traces.span(delivery.notification_id, name) as span:
            span.set_attribute("nexus.attempt", delivery.attempt)
            self._done.put(self._attempt(delivery, address, saga))

    def _attempt(self, delivery: DeliverAttempt, address: str, saga: Saga) -> Finished:
        state = saga.state
        try:
            rendered = self.contents.get(
                delivery.content_ref, state.template, delivery.channel, state.data
            )
        except (TemplateError, ValueError) as exc:
            result = DeliveryResult(False, "", 0.0, False, f"cannot render: {exc}")
        else:
            channel = cast(Channel, delivery.channel)
            try:
                result = self.notifier.send(
                    channel, address, rendered, self.timeouts[channel], delivery.ledger_key
                )
            except Exception as exc:  # an adapter bug must fail the attempt, not the worker
                log.exception("notifier_raised", ledger_key=delivery.ledger_key)
                result = DeliveryResult(False, "", 0.0, True, f"{type(exc).__name__}: {exc}")
        return Finished(delivery, result, recorded=False, sent=True)

    def _settled(self, delivery: DeliverAttempt, row: AttemptRecord) -> Finished:
        if row.status == "delivered":
            result = DeliveryResult(True, row.provider_response or "", row.latency_ms or 0.0)
            return Finished(delivery, result, recorded=True)
        if row.status == "failed":
            # Whether it was retryable is not kept; retrying is safe, it was not delivered.
            error = row.error or "failed"
            result = DeliveryResult(False, row.provider_response or "", 0.0, True, error)
            return Finished(delivery, result, recorded=True)
        if row.status == "sending":
            self.ledger.record(
                [AttemptResult(row.ledger_key, "in_doubt", None, IN_DOUBT, None, self.clock())]
            )
            log.warning("attempt_in_doubt", ledger_key=row.ledger_key)
        return _failed(delivery, IN_DOUBT, False, True)


def _failed(delivery: DeliverAttempt, error: str, retryable: bool, recorded: bool) -> Finished:
    """An attempt that fails before any send."""
    return Finished(delivery, DeliveryResult(False, "", 0.0, retryable, error), recorded)


def _claim(delivery: DeliverAttempt, started_at: datetime) -> AttemptClaim:
    return AttemptClaim(
        ledger_key=delivery.ledger_key,
        notification_id=delivery.notification_id,
        user_id=delivery.user_id,
        channel=delivery.channel,
        attempt=delivery.attempt,
        started_at=started_at,
    )


def _result(finished: Finished, finished_at: datetime) -> AttemptResult:
    result = finished.result
    response = result.provider_response if finished.sent else None
    return AttemptResult(
        ledger_key=finished.delivery.ledger_key,
        status="delivered" if result.ok else "failed",
        provider_response=response,
        error=result.error,
        latency_ms=result.latency_ms,
        finished_at=finished_at,
    )
