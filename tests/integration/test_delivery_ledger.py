"""The PostgreSQL delivery ledger against a real PostgreSQL: claims, results, races."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from infra.config.settings import Settings
from projections.migrations import migrate
from sagas.adapters.port import AttemptClaim, AttemptRecord, AttemptResult
from sagas.adapters.postgres_ledger import PostgresLedger, ensure_ledger
from sagas.adapters.postgres_notifications import PostgresNotificationIndex

T0 = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def pool(settings: Settings) -> Iterator[ConnectionPool[Any]]:
    with psycopg.connect(settings.resolved_database_url, autocommit=True) as conn:
        ensure_ledger(conn)
    with ConnectionPool(settings.resolved_database_url, min_size=1, max_size=4, open=True) as p:
        yield p


def claim(key: str, attempt: int = 1, at: datetime = T0) -> AttemptClaim:
    notification_id, channel, _ = key.split("/")
    return AttemptClaim(key, notification_id, "u1", channel, attempt, at)


def result(key: str, status: Any, **fields: Any) -> AttemptResult:
    values: dict[str, Any] = {"provider_response": None, "error": None, "latency_ms": None}
    return AttemptResult(key, status, finished_at=T0 + timedelta(seconds=1), **values | fields)


def test_claiming_twice_returns_the_existing_row(pool: ConnectionPool[Any]) -> None:
    ledger = PostgresLedger(pool)
    assert ledger.claim([claim("n1/email/1"), claim("n1/sms/1")]) == {}
    again = ledger.claim([claim("n1/email/1", at=T0 + timedelta(hours=1)), claim("n1/email/2")])
    assert again == {
        "n1/email/1": AttemptRecord(
            ledger_key="n1/email/1", notification_id="n1", user_id="u1", channel="email",
            attempt=1, status="sending", provider_response=None, error=None, latency_ms=None,
            started_at=T0, finished_at=None,
        )
    }  # fmt: skip
    assert set(ledger.attempts(["n1/email/1", "n1/email/2", "n1/sms/1", "n9/x/1"])) == {
        "n1/email/1",
        "n1/email/2",
        "n1/sms/1",
    }
    assert ledger.claim([]) == {} and ledger.attempts([]) == {}


def test_only_sending_rows_take_a_result(pool: ConnectionPool[Any]) -> None:
    ledger = PostgresLedger(pool)
    ledger.claim([claim("n1/email/1"), claim("n1/sms/1")])
    ledger.record(
        [
            result("n1/email/1", "delivered", provider_response="250 ok", latency_ms=12),
            result("n1/sms/1", "failed", error="bad number", latency_ms=3.5),
            result("n1/push/1", "delivered"),  # never claimed: nothing to update
        ]
    )
    ledger.record([result("n1/email/1", "failed", error="late"), result("n1/sms/1", "in_doubt")])
    rows = ledger.attempts(["n1/email/1", "n1/sms/1", "n1/push/1"])
    assert set(rows) == {"n1/email/1", "n1/sms/1"}
    email, sms = rows["n1/email/1"], rows["n1/sms/1"]
    assert (email.status, email.provider_response, email.error, email.latency_ms) == (
        "delivered",
        "250 ok",
        None,
        12.0,
    )
    assert email.finished_at == T0 + timedelta(seconds=1)
    assert (sms.status, sms.error, sms.latency_ms) == ("failed", "bad number", 3.5)
    with pytest.raises(ValueError, match="sending"):
        ledger.record([result("n1/email/1", "sending")])


def test_a_settled_claim_is_still_reported_as_existing(pool: ConnectionPool[Any]) -> None:
    ledger = PostgresLedger(pool)
    ledger.claim([claim("n1/email/1")])
    ledger.record([result("n1/email/1", "in_doubt", error="timeout after send")])
    existing = ledger.claim([claim("n1/email/1")])
    assert existing["n1/email/1"].status == "in_doubt"


def test_concurrent_claims_of_one_key_have_exactly_one_winner(
    pool: ConnectionPool[Any],
) -> None:
    ledger = PostgresLedger(pool)
    rounds, contenders = 20, 2
    wins: list[list[str]] = [[] for _ in range(contenders)]
    barrier = threading.Barrier(contenders)

    def contend(me: int) -> None:
        for n in range(rounds):
            key = f"race{n}/webhook/1"
            barrier.wait(timeout=10)
            if key not in ledger.claim([claim(key)]):
                wins[me].append(key)

    threads = [threading.Thread(target=contend, args=(me,)) for me in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    all_wins = [key for won in wins for key in won]
    assert sorted(all_wins) == sorted(f"race{n}/webhook/1" for n in range(rounds))


def test_migrate_creates_the_ledger_and_is_idempotent(settings: Settings) -> None:
    migrate(settings.resolved_database_url)
    migrate(settings.resolved_database_url)
    with psycopg.connect(settings.resolved_database_url, autocommit=True) as conn:
        ensure_ledger(conn)
        indexes = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'notification_ledger'"
            " ORDER BY indexname"
        ).fetchall()
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO public.notification_ledger (ledger_key, notification_id,"
                " user_id, channel, attempt, status, started_at)"
                " VALUES ('k', 'n', 'u', 'c', 1, 'lost', now())"
            )
    assert [name for (name,) in indexes] == [
        "notification_ledger_notification_id_idx",
        "notification_ledger_pkey",
        "notification_ledger_user_id_idx",
    ]


def test_the_notification_index_knows_nothing_before_the_read_model_exists(
    settings: Settings,
) -> None:
    with ConnectionPool(settings.resolved_database_url, min_size=1, max_size=1) as pool:
        index = PostgresNotificationIndex(pool)
        assert index.known(["n-1"]) == set()  # no public.notifications yet
        with pool.connection() as conn:
            conn.execute("CREATE TABLE public.notifications (notification_id text PRIMARY KEY)")
            conn.execute("INSERT INTO public.notifications VALUES ('n-1')")
        assert index.known(["n-1", "n-2"]) == {"n-1"}
