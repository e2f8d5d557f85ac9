"""Fault test: SIGKILL the notifier three times during 5,000 notifications to a flaky sink.

The webhook sink fails 20% of requests with a 500, and the circuit breaker is set to trip
on five failures in a row, so retries, probes and restarts all happen under load.
Afterwards every saga is terminal, no attempt key reached the sink twice, every delivered
(notification, channel) was received exactly once, and the ledger matches the sink's log.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import psycopg
import pytest
from deadline import Deadline
from fault_loads import webhook_users
from stack import ServiceProcess, prepared
from topic_reading import read_topic
from webhook_sink import SinkLog, wait_until, webhook_sink

from infra.config.settings import Settings
from sagas.notification.request import submission
from schemas.codec import AvroCodec
from streams.kafka.async_producer import AsyncProducer
from streams.kafka.config import producer_config
from streams.notification_requests import request_record

NOTIFICATIONS = 5_000
BUDGET_S = 480  # every wait of the test together (deadline.py)
USERS = 20
KILL_AT_LEDGER_ROWS = (1_200, 2_600, 4_000)
TERMINAL = {"notification.completed", "notification.given_up"}
DATA = {"user": {"name": "Ada", "email": "ada@example.com"}, "app": {"name": "N", "url": "u"}}


async def submit_all(settings: Settings, users: list[str]) -> list[str]:
    codec, producer = AvroCodec(), AsyncProducer(producer_config(settings))
    ids, payloads = [], []
    for i in range(NOTIFICATIONS):
        request = submission(
            user_id=users[i % USERS],
            template="welcome",
            data=DATA,
            requested_by="fault-test",
            submitted_at=int(time.time() * 1000),
            idempotency_key=f"fault-{i}",
        )
        ids.append(request.notification_id)
        payloads.append(
            (request.notification_id, codec.encode(request.TYPE, request_record(request)))
        )
    try:
        await producer.send_many(settings.topic("notification-requests"), payloads)
    finally:
        producer.close()
    return ids


def ledger_rows(settings: Settings) -> list[tuple[str, str, str | None]]:
    """(ledger key, status, error) of every attempt."""
    with psycopg.connect(settings.resolved_database_url) as conn:
        return conn.execute("SELECT ledger_key, status, error FROM notification_ledger").fetchall()


def saga_streams(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    streams: dict[str, list[dict[str, Any]]] = {}
    for stored in read_topic(settings, settings.topic("notifications")):
        if stored.record["aggregate_type"] == "notification":
            streams.setdefault(stored.record["aggregate_id"], []).append(stored.record)
    return streams


@pytest.mark.fault
@pytest.mark.timeout(BUDGET_S + 100)  # and the services stopped, the topics read
def test_sigkill_the_notifier_three_times_during_5000_notifications(settings: Settings) -> None:
    deadline = Deadline(BUDGET_S)
    with webhook_sink(fail_rate=0.2) as (sink, port):
        stack = prepared(
            settings,
            delivery_allow_list=f"127.0.0.1:{port}",
            notification_base_delay_ms=50,
            notification_max_delay_ms=400,
            circuit_failure_threshold=5,
            circuit_cool_down_ms=300,
        )
        names = ("command-processor", "projector", "gateway", "notifier")
        services = {name: ServiceProcess(name, stack) for name in names}
        try:
            for service in services.values():
                service.start(deadline.left(60, f"the {service.name} to start"))
            users = webhook_users(stack, USERS, f"http://127.0.0.1:{port}/flaky")
            ids = deadline.run(submit_all(stack, users), 120, "the requests produced")
            notifier = services["notifier"]
            for rows in KILL_AT_LEDGER_ROWS:
                wait_until(
                    lambda r=rows: len(ledger_rows(stack)) >= r,
                    deadline.left(120, f"{rows} attempts"),
                    f"{rows} attempts",
                )
                notifier.kill()
                notifier.start(deadline.left(60, "the notifier to start again"))
            streams = wait_until(
                lambda: (s := saga_streams(stack))
                and all(i in s and s[i][-1]["type"] in TERMINAL for i in ids)
                and s,
                deadline.left(240, "every saga to end"),
                "every saga to end",
            )
        finally:
            for service in reversed(list(services.values())):
                service.stop()
        assert_consistent(ids, streams, ledger_rows(stack), sink)
        assert notifier.starts == 1 + len(KILL_AT_LEDGER_ROWS)


def assert_consistent(
    ids: list[str],
    streams: dict[str, list[dict[str, Any]]],
    ledger: list[tuple[str, str, str | None]],
    sink: SinkLog,
) -> None:
    assert set(ids) <= set(streams) and len(set(ids)) == NOTIFICATIONS
    for saga_id in ids:
        versions = [e["aggregate_version"] for e in streams[saga_id]]
        assert versions == list(range(1, len(versions) + 1)), saga_id
        assert sum(e["type"] in TERMINAL for e in streams[saga_id]) == 1, saga_id
    receipts = sink.snapshot()
    per_key = Counter(r.key for r in receipts)
    assert None not in per_key and max(per_key.values()) == 1  # no key was ever sent twice
    assert all(r.key and r.key.rsplit("/", 1)[0] == r.idempotency_key for r in receipts)
    accepted = Counter(r.key.rsplit("/", 1)[0] for r in receipts if r.status == 200 and r.key)
    delivered = {
        f"{saga_id}/{e['data']['channel']}"
        for saga_id in ids
        for e in streams[saga_id]
        if e["type"] == "notification.delivered"
    }
    wrong = {pair: accepted[pair] for pair in delivered if accepted[pair] != 1}
    assert delivered and not wrong, {  # the pairs, their receipts, ledger rows and saga events
        pair: ([(r.key, r.status) for r in receipts if r.key and r.key.startswith(pair)],
               [row for row in ledger if row[0].startswith(pair)],
               [(e["type"], e["data"]) for e in streams[pair.split("/")[0]]])
        for pair in list(wrong)[:3]
    }  # fmt: skip
    status = {key: s for key, s, _ in ledger}
    errors = {key: e for key, _, e in ledger}
    sink_status = {r.key: r.status for r in receipts}
    assert set(sink_status) <= set(status)  # the sink saw nothing the ledger does not know
    for key, row in status.items():
        match row:
            case "delivered":
                assert sink_status[key] == 200, key
            case "failed":
                assert sink_status.get(key) == 500, (key, errors[key])
            case "in_doubt":
                assert key.rsplit("/", 1)[0] not in delivered, key
            case _:
                raise AssertionError(f"{key} left {row}")
    in_doubt = [k for k, s in status.items() if s == "in_doubt"]
    accepted_in_doubt = [k for k in in_doubt if sink_status.get(k) == 200]
    print(
        f"\nfault test: {len(delivered)} delivered, {len(in_doubt)} in doubt "
        f"({len(accepted_in_doubt)} of them reached the sink), "
        f"{sum(1 for i in ids if streams[i][-1]['type'] == 'notification.given_up')} given up"
    )
