"""DeliveryDesk.pump keeps the claimed-but-unsent set within the sender pool: what a crash can
leave in doubt. Fakes of the ledger, recipients and contents (ports the notifier owns)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from aggregates.user.events import ChannelAddress
from sagas.adapters.port import AttemptClaim, AttemptRecord, AttemptResult, DeliveryResult
from sagas.adapters.recipients import Recipient
from sagas.notification.commands import DeliverAttempt
from sagas.runtime.contents import RenderedContents
from sagas.runtime.engine import Saga
from streams.notifier.deliveries import NO_ADDRESS, DeliveryDesk

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


class Ledger:
    def __init__(self) -> None:
        self.status: dict[str, str] = {}

    def claim(self, claims: Sequence[AttemptClaim]) -> dict[str, AttemptRecord]:
        for claim in claims:
            self.status[claim.ledger_key] = "sending"
        return {}

    def record(self, results: Sequence[AttemptResult]) -> None:
        for result in results:
            self.status[result.ledger_key] = result.status

    def sending(self) -> int:
        return sum(1 for s in self.status.values() if s == "sending")


class Recipients:
    def find(self, user_ids: Any) -> dict[str, Recipient]:
        hook = (ChannelAddress("webhook", "https://example.com/hook"),)
        return {u: Recipient(u, f"{u}@x.io", True, hook) for u in user_ids if u != "nowhere"}


class HeldContents:
    """Every send waits here until released: the sends stay in flight."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def get(self, *_: Any) -> Any:
        self.release.wait(5)
        raise ValueError("not rendered in this test")


class Notifier:
    def send(self, *_: Any) -> DeliveryResult:
        raise AssertionError("nothing is rendered, so nothing is sent")


def attempt(n: int, user: str = "u-1") -> DeliverAttempt:
    return DeliverAttempt(f"n-{n}", user, "webhook", 1, f"n-{n}/webhook/1", "ref", 0)


def desk(ledger: Ledger, contents: HeldContents, concurrency: int) -> DeliveryDesk:
    return DeliveryDesk(
        Notifier(),
        ledger,
        Recipients(),
        cast(RenderedContents, contents),
        {"webhook": 5.0},
        concurrency,
        lambda: T0,
    )


def owned(*attempts: DeliverAttempt) -> dict[str, Saga]:
    return {a.notification_id: cast(Saga, object()) for a in attempts}


def test_an_attempt_without_an_address_is_recorded_before_pump_returns() -> None:
    ledger, contents = Ledger(), HeldContents()
    sends = desk(ledger, contents, concurrency=2)
    unaddressed = [attempt(1, "nowhere"), attempt(2, "nowhere")]
    addressed = [attempt(3), attempt(4)]
    sends.dispatch(unaddressed + addressed)
    try:
        sagas = owned(*unaddressed, *addressed)
        sends.pump(sagas)
        assert ledger.status == {"n-1/webhook/1": "failed", "n-2/webhook/1": "failed"}
        sends.pump(sagas)  # the same step pumps again: the pool has room for two
        assert ledger.sending() == 2 == sends.in_flight
    finally:
        contents.release.set()
        sends.close()
    failures = [f for f in sends.finished() if not f.sent]
    assert [(f.delivery.ledger_key, f.result.error, f.recorded) for f in failures] == [
        ("n-1/webhook/1", NO_ADDRESS, True),
        ("n-2/webhook/1", NO_ADDRESS, True),
    ]


def test_an_attempt_of_a_saga_owned_elsewhere_is_not_claimed() -> None:
    ledger, contents = Ledger(), HeldContents()
    sends = desk(ledger, contents, concurrency=4)
    mine, moved = attempt(1), attempt(2)
    sends.dispatch([mine, moved])
    try:
        sends.pump(owned(mine))
        assert ledger.status == {"n-1/webhook/1": "sending"}
        assert not sends.waiting
    finally:
        contents.release.set()
        sends.close()
