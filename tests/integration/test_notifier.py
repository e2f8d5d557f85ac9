"""The notifier process end to end: requests in, webhooks out, saga events and ledger written.

Real processes (command processor, projector, gateway, notifier), a real broker and
database, and a local webhook sink the test starts.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest
from notifier_helpers import saga_events, webhook_user
from psycopg import sql
from stack import ServiceProcess, api_client, prepared, running
from webhook_sink import SinkLog, wait_until

from infra.config.settings import Settings
from sagas.notification.request import submission
from schemas.codec import AvroCodec
from schemas.timestamps import from_epoch_ms
from streams.kafka.async_producer import AsyncProducer
from streams.kafka.config import producer_config
from streams.notification_requests import NotificationRequests, notify

SERVICES = ("command-processor", "projector", "gateway", "notifier")
SAMPLE = {"user": {"name": "Ada", "email": "ada@example.com"}, "app": {"name": "N", "url": "u"}}


@pytest.fixture(scope="module")
def services(
    module_settings: Settings, sink: tuple[SinkLog, int]
) -> Iterator[dict[str, ServiceProcess]]:
    settings = prepared(
        module_settings,
        delivery_allow_list=f"127.0.0.1:{sink[1]}",
        notification_base_delay_ms=2000,  # long enough to crash between try and retry
        notification_max_delay_ms=2000,
    )
    with running(settings, SERVICES) as started:
        yield started


@pytest.fixture(scope="module")
def stack(services: dict[str, ServiceProcess]) -> Settings:
    return services["notifier"].settings


@pytest.fixture(scope="module")
def api(stack: Settings) -> Iterator[httpx.Client]:
    with api_client(stack, "ops", ["users:read", "users:write", "users:admin"]) as client:
        yield client


def ledger(settings: Settings, notification_id: str) -> list[tuple[Any, ...]]:
    return ledger_rows(settings, "channel", "notification_id", notification_id)


def ledger_for(settings: Settings, user_id: str) -> list[tuple[Any, ...]]:
    return ledger_rows(settings, "notification_id", "user_id", user_id)


def claimed_at(settings: Settings, ledger_key: str) -> datetime:
    """When the attempt was claimed, just before it was sent (the notifier's clock)."""
    query = "SELECT started_at FROM notification_ledger WHERE ledger_key = %s"
    with psycopg.connect(settings.resolved_database_url) as conn:
        row = conn.execute(query, (ledger_key,)).fetchone()
    assert row is not None, f"{ledger_key} never claimed"
    started_at: datetime = row[0]
    return started_at


def ledger_rows(settings: Settings, first: str, column: str, value: str) -> list[tuple[Any, ...]]:
    """(`first`, attempt, status) of the ledger rows where `column` is `value`."""
    query = sql.SQL(
        "SELECT {}, attempt, status FROM notification_ledger WHERE {} = %s ORDER BY attempt"
    ).format(sql.Identifier(first), sql.Identifier(column))
    with psycopg.connect(settings.resolved_database_url) as conn:
        return conn.execute(query, (value,)).fetchall()


def test_a_request_is_delivered_once_and_recorded(
    stack: Settings, api: httpx.Client, sink: tuple[SinkLog, int]
) -> None:
    log, port = sink
    user_id = webhook_user(api, f"http://127.0.0.1:{port}/ok")
    key = uuid.uuid4().hex
    first = asyncio.run(notify(stack, user_id, "welcome", SAMPLE, idempotency_key=key))
    again = asyncio.run(notify(stack, user_id, "welcome", SAMPLE, idempotency_key=key))
    assert first == again

    def completed() -> list[dict[str, Any]]:
        events = saga_events(stack, first)
        return events if events and events[-1]["type"] == "notification.completed" else []

    events = wait_until(completed, 30, "the saga to complete")
    assert [e["type"].removeprefix("notification.") for e in events] == [
        "requested",
        "rendered",
        "attempt_started",
        "delivered",
        "completed",
    ]
    assert [e["aggregate_version"] for e in events] == [1, 2, 3, 4, 5]
    assert {e["correlation_id"] for e in events} == {first}
    received = [r for r in log.snapshot() if r.key and r.key.startswith(first)]
    assert [r.key for r in received] == [f"{first}/webhook/1"]
    assert b'"Ada"' in received[0].body
    assert ledger(stack, first) == [("webhook", 1, "delivered")]


def test_a_failing_endpoint_is_retried_then_given_up(
    stack: Settings, api: httpx.Client, sink: tuple[SinkLog, int]
) -> None:
    log, port = sink
    user_id = webhook_user(api, f"http://127.0.0.1:{port}/fail")
    saga_id = asyncio.run(notify(stack, user_id, "welcome", SAMPLE))

    def finished() -> list[dict[str, Any]]:
        events = saga_events(stack, saga_id)
        return events if events and events[-1]["type"] == "notification.given_up" else []

    events = wait_until(finished, 30, "the saga to give up")
    kinds = [e["type"].removeprefix("notification.") for e in events]
    assert kinds.count("attempt_failed") == 3 and kinds.count("retry_scheduled") == 2
    assert "retries_exhausted" in events[-1]["data"]["reason"]
    assert [r.key for r in log.snapshot() if r.key and r.key.startswith(saga_id)] == [
        f"{saga_id}/webhook/{n}" for n in (1, 2, 3)
    ]
    assert ledger(stack, saga_id) == [("webhook", n, "failed") for n in (1, 2, 3)]


# The retry is due 4-8 s after the failure, so a kill as soon as `retry_scheduled` is seen
# lands before it, on a loaded machine too; the module's own 1-2 s would not.
SLOW_RETRIES = {"notification_base_delay_ms": 8000, "notification_max_delay_ms": 8000}


# Its waits: the module's four starts when run alone, a stop, 60 + 30 + 60 + 30 s.
@pytest.mark.fault
@pytest.mark.timeout(450)
def test_a_retry_scheduled_before_a_crash_still_happens(
    stack: Settings,
    api: httpx.Client,
    sink: tuple[SinkLog, int],
    services: dict[str, ServiceProcess],
) -> None:
    log, port = sink
    user_id = webhook_user(api, f"http://127.0.0.1:{port}/fail-first")
    notifier = services["notifier"]
    notifier.stop()
    slow = ServiceProcess("notifier", stack.model_copy(update=SLOW_RETRIES)).start()
    saga_id = asyncio.run(notify(stack, user_id, "welcome", SAMPLE))

    def types() -> list[str]:
        return [e["type"].removeprefix("notification.") for e in saga_events(stack, saga_id)]

    wait_until(lambda: "retry_scheduled" in types(), 30, "the retry to be scheduled")
    slow.kill()  # the timer lived only in its memory, and in the log
    killed_at = datetime.now(UTC)
    retry = next(e for e in saga_events(stack, saga_id) if e["type"].endswith("retry_scheduled"))
    due_at = from_epoch_ms(retry["data"]["due_at"])
    assert killed_at < due_at, f"killed {killed_at - due_at} after the retry was due"
    notifier.start()
    wait_until(lambda: types()[-1:] == ["completed"], 30, "the retry after the restart")
    assert types() == [
        "requested",
        "rendered",
        "attempt_started",
        "attempt_failed",
        "retry_scheduled",
        "attempt_started",
        "delivered",
        "completed",
    ]
    keys = [(r.key, r.status) for r in log.snapshot() if r.key and r.key.startswith(saga_id)]
    assert keys == [(f"{saga_id}/webhook/1", 500), (f"{saga_id}/webhook/2", 200)]
    assert ledger(stack, saga_id) == [("webhook", 1, "failed"), ("webhook", 2, "delivered")]
    retried_at = claimed_at(stack, f"{saga_id}/webhook/2")
    assert retried_at >= due_at, f"retried {due_at - retried_at} before it was due"
    assert retried_at > killed_at  # so by the restarted notifier: the other one was gone


def test_a_clean_stop_mid_stream_leaves_nothing_in_doubt(
    stack: Settings,
    api: httpx.Client,
    sink: tuple[SinkLog, int],
    services: dict[str, ServiceProcess],
) -> None:
    log, port = sink
    user_id = webhook_user(api, f"http://127.0.0.1:{port}/ok")
    count = 1_000

    async def submit() -> list[str]:
        producer = AsyncProducer(producer_config(stack))
        requests = NotificationRequests(stack, producer, AvroCodec())
        batch = [
            submission(
                user_id=user_id,
                template="welcome",
                data=SAMPLE,
                requested_by="t",
                submitted_at=0,
                notification_id=str(uuid.uuid4()),
            )
            for _ in range(count)
        ]
        try:
            await asyncio.gather(*(requests.submit(r) for r in batch))
        finally:
            producer.close()
        return [r.notification_id for r in batch]

    ids = asyncio.run(submit())
    wait_until(lambda: len(ledger_for(stack, user_id)) >= 20, 30, "sends to be under way")
    services["notifier"].stop()  # SIGTERM: senders finish, outcomes are recorded, then exit
    assert len(ledger_for(stack, user_id)) < count  # it really stopped mid-stream
    services["notifier"].start()
    wait_until(
        lambda: [s for _, _, s in ledger_for(stack, user_id)].count("delivered") == count,
        60,
        "every notification to be delivered",
    )
    assert {s for _, _, s in ledger_for(stack, user_id)} == {"delivered"}
    keys = [r.key for r in log.snapshot() if r.key and r.key.split("/")[0] in set(ids)]
    assert sorted(keys) == sorted(f"{i}/webhook/1" for i in ids)
