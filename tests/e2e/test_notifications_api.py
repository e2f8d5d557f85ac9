"""The notifications HTTP API against the whole stack (gateway, command processor, projector).

POSTs are checked by reading the requests back from the notification-requests topic. The
read side is fed real saga events, produced here as the saga worker would write them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from confluent_kafka import Producer
from psycopg_pool import ConnectionPool
from stack import ServiceProcess, prepared, running
from test_http_api import assert_problem
from topic_reading import Stored, read_topic

from aggregates.codec import to_data
from gateway.auth import TokenVerifier
from infra.config.settings import Settings
from infra.local.processes import free_port
from infra.local.service_env import with_free_ports
from projections.migrations import migrate
from sagas.adapters.port import AttemptClaim, AttemptResult
from sagas.adapters.postgres_ledger import PostgresLedger
from sagas.notification.events import (
    NotificationAttemptFailed,
    NotificationAttemptStarted,
    NotificationCompleted,
    NotificationDeferred,
    NotificationDelivered,
    NotificationEvent,
    NotificationRequested,
    NotificationRetryScheduled,
    Route,
)
from schemas.codec import AvroCodec
from streams.kafka.config import producer_config

T0 = datetime(2025, 3, 1, 12, tzinfo=UTC)
WRITE = ["notifications:write", "notifications:read"]
WELCOME = {"user": {"name": "Ann", "email": "ann@example.com"}}  # what the template needs


@pytest.fixture(scope="module")
def stack(module_settings: Settings) -> Iterator[Settings]:
    settings = prepared(module_settings)
    with running(settings, ("command-processor", "projector", "gateway")):
        yield settings


class Client:
    """The gateway, called with a fresh token per subject and scopes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.verifier = TokenVerifier(
            settings.resolved_jwt_secret(), settings.jwt_issuer, settings.jwt_audience
        )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{settings.gateway_port}", timeout=30)

    def as_(self, subject: str, scopes: list[str]) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.verifier.issue(subject, scopes)}"}

    def new_user(self) -> str:
        admin = self.as_("admin", ["users:write", "users:read", "users:admin"])
        body = {"email": f"{uuid.uuid4().hex[:8]}@example.com", "name": "Ann"}
        created = self.http.post("/api/v1/users", json=body, headers={**admin, "Prefer": "wait=15"})
        assert created.status_code == 201, created.text
        user_id: str = created.json()["aggregate_id"]
        seen = self.http.get(
            f"/api/v1/users/{user_id}", params={"after": created.json()["position"]}, headers=admin
        )
        assert seen.status_code == 200, seen.text
        return user_id

    def notify(self, subject: str, scopes: list[str], **body: Any) -> httpx.Response:
        return self.http.post("/api/v1/notifications", json=body, headers=self.as_(subject, scopes))

    def get(self, path: str, subject: str, scopes: list[str], **params: Any) -> httpx.Response:
        return self.http.get(path, params=params, headers=self.as_(subject, scopes))


@pytest.fixture(scope="module")
def client(stack: Settings) -> Iterator[Client]:
    made = Client(stack)
    yield made
    made.http.close()


def requests_for(settings: Settings, notification_id: str) -> list[Stored]:
    topic = settings.topic("notification-requests")
    return [s for s in read_topic(settings, topic) if s.record["aggregate_id"] == notification_id]


def test_a_request_is_accepted_once_it_is_on_the_requests_topic(client: Client) -> None:
    user_id = client.new_user()
    headers = {**client.as_(user_id, WRITE), "X-Correlation-Id": "corr-notify-1"}
    body = {
        "user_id": user_id,
        "template": "welcome",
        "channels": ["email", "sms", "email"],
        "data": {**WELCOME, "n": 1},
        "idempotency_key": "signup-1",
    }
    accepted = client.http.post("/api/v1/notifications", json=body, headers=headers)
    assert accepted.status_code == 202, accepted.text
    notification_id = accepted.json()["notification_id"]
    location = f"/api/v1/notifications/{notification_id}"
    assert accepted.json() == {
        "notification_id": notification_id,
        "status": "accepted",
        "status_url": location,
    }
    assert accepted.headers["location"] == location
    [stored] = requests_for(client.settings, notification_id)
    assert stored.key == notification_id.encode()
    record = stored.record
    assert (record["type"], record["aggregate_type"], record["aggregate_version"]) == (
        "notification.submitted",
        "notification",
        0,
    )
    assert (record["correlation_id"], record["actor"]) == ("corr-notify-1", user_id)
    data = record["data"]
    assert data == {
        "notification_id": notification_id, "user_id": user_id, "template": "welcome",
        "channels": ["email", "sms"],
        "data": '{"n":1,"user":{"email":"ann@example.com","name":"Ann"}}',
        "idempotency_key": "signup-1", "requested_by": user_id,
        "submitted_at": data["submitted_at"],
    }  # fmt: skip
    assert abs(data["submitted_at"] / 1000 - time.time()) < 60


def test_one_idempotency_key_names_one_notification(client: Client) -> None:
    user_id = client.new_user()
    body = {"user_id": user_id, "template": "welcome", "data": WELCOME}
    first = client.notify(user_id, WRITE, **body, idempotency_key="k-1")
    again = client.notify(user_id, WRITE, **body, idempotency_key="k-1")
    other = client.notify(user_id, WRITE, **body, idempotency_key="k-2")
    unkeyed = [client.notify(user_id, WRITE, **body) for _ in range(2)]
    assert all(r.status_code == 202 for r in (first, again, other, *unkeyed))
    ids = [r.json()["notification_id"] for r in (first, again, other, *unkeyed)]
    assert ids[0] == ids[1] and len(set(ids)) == 4
    stored = requests_for(client.settings, ids[0])
    assert len(stored) == 2 and {s.record["data"]["channels"] for s in stored} == {None}


def test_scopes_decide_who_may_notify_whom(client: Client) -> None:
    alice, bob = client.new_user(), client.new_user()
    body = {"user_id": bob, "template": "welcome", "data": WELCOME}
    assert_problem(client.notify(alice, WRITE, **body), 403, "insufficient-scope")
    assert_problem(client.notify(bob, ["notifications:read"], **body), 403, "insufficient-scope")
    assert client.notify(bob, WRITE, **body).status_code == 202
    sent = client.notify("billing-service", ["notifications:send"], **body)
    assert sent.status_code == 202, sent.text
    [stored] = requests_for(client.settings, sent.json()["notification_id"])
    assert stored.record["data"]["requested_by"] == "billing-service"
    anonymous = client.http.post("/api/v1/notifications", json=body)
    assert_problem(anonymous, 401, "missing-token")


def test_a_request_for_an_unknown_user_is_404(client: Client) -> None:
    ghost = f"ghost-{uuid.uuid4().hex[:8]}"
    body = {"user_id": ghost, "template": "welcome", "data": WELCOME}
    assert_problem(client.notify(ghost, WRITE, **body), 404, "user-not-found")
    assert_problem(client.notify("ops", ["notifications:send"], **body), 404, "user-not-found")


def errors_of(response: httpx.Response) -> dict[str, str]:
    problem = assert_problem(response, 422, "invalid-body")
    return {e["pointer"]: e["detail"] for e in problem["errors"]}


def test_invalid_requests_name_every_bad_field(client: Client) -> None:
    send = ["notifications:send"]
    bad = client.notify(
        "ops", send, user_id=5, template="nope", channels=["email", "fax", 3], data=[1],
        idempotency_key="", **{"priority": "high", "a/b": 1},
    )  # fmt: skip
    assert set(errors_of(bad)) == {
        "/user_id", "/template", "/channels/1", "/channels/2", "/data", "/idempotency_key",
        "/priority", "/a~1b",
    }  # fmt: skip
    assert errors_of(bad)["/template"].startswith("unknown template; known: ")
    internal = client.notify("ops", send, user_id="u", template="digest", data={})
    assert errors_of(internal) == {"/template": errors_of(bad)["/template"]}
    assert "digest" not in errors_of(bad)["/template"].split("known: ")[1].split(", ")
    assert errors_of(bad)["/priority"] == "unknown field"
    assert errors_of(bad)["/data"] == "must be an object"
    assert errors_of(client.notify("ops", send)) == {
        "/user_id": "is required",
        "/template": "is required",
        "/data": "is required",
    }
    base = {"user_id": "u", "template": "welcome", "data": {}}
    assert set(errors_of(client.notify("ops", send, **base, channels="email"))) == {"/channels"}
    assert set(errors_of(client.notify("ops", send, **base, channels=[]))) == {"/channels"}
    too_long = client.notify("ops", send, **base, idempotency_key="k" * 201)
    assert set(errors_of(too_long)) == {"/idempotency_key"}
    not_object = client.http.post(
        "/api/v1/notifications", json=[base], headers=client.as_("ops", send)
    )
    assert errors_of(not_object) == {"/": "must be an object"}
    malformed = client.http.post(
        "/api/v1/notifications",
        content=b"{",
        headers={**client.as_("ops", send), "Content-Type": "application/json"},
    )
    assert_problem(malformed, 400, "malformed-json")


class SagaWriter:
    """Writes saga events as the saga worker does: one saga's versions contiguous from 1."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topic("notifications")
        self.codec = AvroCodec()
        self.producer = Producer(producer_config(settings))

    def saga(self, saga_id: str, *events: NotificationEvent, at: datetime = T0) -> None:
        for version, event in enumerate(events, start=1):
            record = {
                "event_id": str(uuid.uuid4()), "type": event.TYPE,
                "aggregate_type": "notification", "aggregate_id": saga_id,
                "aggregate_version": version, "occurred_at": at + timedelta(seconds=version),
                "correlation_id": f"corr-{saga_id}", "causation_id": None,
                "actor": "notification-worker", "data": to_data(event),
            }  # fmt: skip
            self.producer.produce(self.topic, self.codec.encode(event.TYPE, record), saga_id)
        assert self.producer.flush(30) == 0

    def circuit_opened(self, channel: str) -> None:
        record = {
            "event_id": str(uuid.uuid4()), "type": "channel.circuit_opened",
            "aggregate_type": "channel", "aggregate_id": channel, "aggregate_version": 0,
            "occurred_at": T0, "correlation_id": "c", "causation_id": None, "actor": "worker",
            "data": {"consecutive_failures": 5, "reopen_at": 0},
        }  # fmt: skip
        self.producer.produce(self.topic, self.codec.encode("channel.circuit_opened", record))
        assert self.producer.flush(30) == 0


def requested(saga_id: str, user_id: str, at: datetime = T0) -> NotificationRequested:
    ms = int(at.timestamp() * 1000)
    return NotificationRequested(
        notification_id=saga_id, user_id=user_id, template="welcome", requested_channels=None,
        routes=(Route(("email", "sms")), Route(("push",))), data="{}", idempotency_key=None,
        critical=False, requested_at=ms, deadline=ms + 3_600_000, max_attempts=3,
        base_delay_ms=1000, max_delay_ms=60_000,
    )  # fmt: skip


def wait_for(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "the projector did not get there in time"
        time.sleep(0.1)
    return found


@pytest.fixture(scope="module")
def sagas(stack: Settings) -> Iterator[SagaWriter]:
    writer = SagaWriter(stack)
    yield writer
    writer.producer.flush(10)


def test_a_notification_shows_its_saga_and_its_ledger_attempts(
    client: Client, sagas: SagaWriter, stack: Settings
) -> None:
    owner, saga_id = f"owner-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    sagas.circuit_opened("webhook")
    sagas.saga(
        saga_id,
        requested(saga_id, owner),
        NotificationAttemptStarted("email", 1, f"{saga_id}/email/1"),
        NotificationAttemptFailed("email", 1, "timeout", True, 0, 0.5),
        NotificationRetryScheduled("email", 2, 0),
        NotificationAttemptStarted("email", 2, f"{saga_id}/email/2"),
        NotificationDelivered("email", 2, "250 ok", 40),
        NotificationAttemptStarted("push", 1, f"{saga_id}/push/1"),
        NotificationDelivered("push", 1, "200", 9),
        NotificationCompleted(("email", "push")),
    )
    write_ledger(stack, saga_id, owner)
    path = f"/api/v1/notifications/{saga_id}"

    def completed() -> dict[str, Any] | None:
        found = client.get(path, owner, ["notifications:read"])
        return found.json() if found.status_code == 200 and found.json()["version"] == 9 else None

    notification = wait_for(completed)
    assert notification["status"] == "completed" and notification["reason"] is None
    assert notification["routes"] == [{"chain": ["email", "sms"]}, {"chain": ["push"]}]
    assert notification["delivered_channels"] == ["email", "push"]
    assert notification["requested_at"] == "2025-03-01T12:00:00.000Z"
    assert notification["completed_at"] == "2025-03-01T12:00:09.000Z"
    attempts = [(a["channel"], a["attempt"], a["status"]) for a in notification["attempts"]]
    assert attempts == [("email", 1, "failed"), ("email", 2, "delivered"), ("push", 1, "sending")]
    assert notification["attempts"][1]["provider_response"] == "250 ok"
    assert notification["attempts"][1]["latency_ms"] == 40.0
    for privilege in ("sagas:read", "notifications:send"):
        assert client.get(path, "ops", ["notifications:read", privilege]).status_code == 200
    stranger = client.get(path, "someone-else", ["notifications:read"])
    assert_problem(stranger, 404, "notification-not-found")
    assert_problem(client.get(path, owner, ["users:read"]), 403, "insufficient-scope")
    unknown = client.get(f"/api/v1/notifications/{uuid.uuid4()}", owner, ["notifications:read"])
    assert_problem(unknown, 404, "notification-not-found")
    check_history(client, saga_id, owner)


def write_ledger(settings: Settings, saga_id: str, user_id: str) -> None:
    with ConnectionPool(settings.resolved_database_url, min_size=1, max_size=1, open=True) as pool:
        ledger = PostgresLedger(pool)
        keys = (("push", 1), ("email", 2), ("email", 1))
        ledger.claim(
            [AttemptClaim(f"{saga_id}/{c}/{n}", saga_id, user_id, c, n, T0) for c, n in keys]
        )
        done = T0 + timedelta(seconds=1)
        ledger.record(
            [
                AttemptResult(f"{saga_id}/email/1", "failed", None, "timeout", 5000, done),
                AttemptResult(f"{saga_id}/email/2", "delivered", "250 ok", None, 40, done),
            ]
        )


def check_history(client: Client, saga_id: str, owner: str) -> None:
    path = f"/api/v1/sagas/{saga_id}/history"
    history = client.get(path, "ops", ["sagas:read"])
    assert history.status_code == 200, history.text
    events = history.json()["events"]
    assert history.json()["saga_id"] == saga_id
    assert [e["version"] for e in events] == list(range(1, 10))
    assert events[0]["type"] == "notification.requested"
    assert events[-1]["type"] == "notification.completed"
    assert events[-1]["data"] == {"channels": ["email", "push"]}
    assert events[5]["data"] == {
        "channel": "email", "attempt": 2, "provider_response": "250 ok", "latency_ms": 40,
    }  # fmt: skip
    assert (events[0]["actor"], events[0]["correlation_id"]) == (
        "notification-worker",
        f"corr-{saga_id}",
    )
    assert events[0]["occurred_at"] == "2025-03-01T12:00:01.000Z"
    assert_problem(client.get(path, owner, ["notifications:read"]), 403, "insufficient-scope")
    unknown = client.get(f"/api/v1/sagas/{uuid.uuid4()}/history", "ops", ["sagas:read"])
    assert_problem(unknown, 404, "saga-not-found")


def test_a_users_notifications_are_listed_newest_first_page_by_page(
    client: Client, sagas: SagaWriter
) -> None:
    owner = f"owner-{uuid.uuid4().hex[:8]}"
    ids = [str(uuid.uuid4()) for _ in range(3)]
    times = [T0 + timedelta(hours=hour) for hour in range(3)]
    for saga_id, at in zip(ids[:2], times, strict=False):
        sagas.saga(saga_id, requested(saga_id, owner, at), at=at)
    quiet_until = int((T0 + timedelta(hours=9)).timestamp() * 1000)
    newest = requested(ids[2], owner, times[2])
    sagas.saga(ids[2], newest, NotificationDeferred(quiet_until, "quiet_hours"), at=times[2])
    path, reader = f"/api/v1/users/{owner}/notifications", ["notifications:read"]

    def newest_deferred() -> dict[str, Any] | None:
        page = client.get(path, owner, reader, limit=2).json()
        ready = len(page["items"]) == 2 and page["items"][0]["status"] == "deferred"
        return page if ready else None

    first = wait_for(newest_deferred)
    assert [n["notification_id"] for n in first["items"]] == [ids[2], ids[1]]
    assert first["items"][0]["deferred_until"] == "2025-03-01T21:00:00.000Z"
    assert first["items"][0]["reason"] == "quiet_hours"
    second = client.get(path, owner, reader, limit=2, cursor=first["next_cursor"]).json()
    assert [n["notification_id"] for n in second["items"]] == [ids[0]]
    assert second["next_cursor"] is None
    everything = client.get(path, "ops", ["notifications:read", "notifications:send"]).json()
    assert [n["notification_id"] for n in everything["items"]] == ids[::-1]
    assert_problem(client.get(path, "someone-else", reader), 404, "notifications-not-found")
    assert_problem(client.get(path, owner, reader, cursor="nope"), 400, "invalid-cursor")
    assert_problem(client.get(path, owner, reader, limit=0), 400, "invalid-limit")
    empty = client.get(
        f"/api/v1/users/{uuid.uuid4()}/notifications", "ops", ["sagas:read", *reader]
    )
    assert empty.json() == {"items": [], "next_cursor": None}


def test_a_request_gets_503_when_kafka_is_unreachable(settings: Settings) -> None:
    dead = with_free_ports(settings).model_copy(
        update={"kafka_bootstrap": f"127.0.0.1:{free_port()}", "produce_timeout_ms": 1500}
    )
    migrate(dead.resolved_database_url)
    with psycopg.connect(dead.resolved_database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO public.users (user_id, email, name, status, version, registered_at,"
            " updated_at) VALUES ('ann', 'a@x.io', 'Ann', 'active', 1, now(), now())"
        )
    gateway = ServiceProcess("gateway", dead)
    try:
        gateway.start(probe="/healthz")
        client = Client(dead)
        body = {"user_id": "ann", "template": "welcome", "data": WELCOME}
        refused = client.notify("ann", WRITE, **body)
        client.http.close()
    finally:
        gateway.stop()
    assert_problem(refused, 503, "log-unavailable")
    assert refused.headers["retry-after"] == "5"


def test_a_key_whose_saga_started_is_answered_from_it_and_not_sent_again(
    client: Client, sagas: SagaWriter
) -> None:
    user_id = client.new_user()
    body = {"user_id": user_id, "template": "welcome", "data": WELCOME}
    first = client.notify(user_id, WRITE, **body, idempotency_key="old-key")
    saga_id = first.json()["notification_id"]
    sagas.saga(saga_id, requested(saga_id, user_id), NotificationCompleted(("email",)))
    wait_for(lambda: client.get(f"/api/v1/notifications/{saga_id}", user_id, WRITE).is_success)

    again = client.notify(user_id, WRITE, **body, idempotency_key="old-key")

    assert (first.status_code, again.status_code) == (202, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == {
        "notification_id": saga_id, "status": "completed",
        "status_url": f"/api/v1/notifications/{saga_id}",
    }  # fmt: skip
    assert len(requests_for(client.settings, saga_id)) == 1
