"""`POST /api/v1/events` against the real gateway process, read back from the events topic.

Each test publishes as a subject of its own and looks only at the records whose `actor` is
that subject (the gateway stamps it), so the tests share one topic without seeing each other.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psycopg
import pytest
from stack import ServiceProcess, api_client, prepared, running
from test_http_api import assert_problem
from topic_reading import Stored, read_topic

from gateway.auth import DEFAULT_SCOPES, PUBLISH_EVENTS
from gateway.event_input import MAX_EVENTS
from gateway.notifications import REPLAYED
from infra.config.settings import Settings
from infra.local.processes import free_port
from infra.local.service_env import with_free_ports
from projections.migrations import migrate


@pytest.fixture(scope="module")
def gateway(module_settings: Settings) -> Iterator[Settings]:
    settings = prepared(module_settings)
    migrate(settings.resolved_database_url)
    with running(settings, ("gateway",)):
        yield settings


@pytest.fixture
def subject() -> str:
    return f"svc-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def api(gateway: Settings, subject: str) -> Iterator[httpx.Client]:
    with api_client(gateway, subject, [PUBLISH_EVENTS]) as client:
        yield client


def activity(kind: str = "login", **envelope: Any) -> dict[str, Any]:
    data = {"kind": kind, "subject_id": "s-1", "attributes": {"ip": "127.0.0.1"}}
    return {"type": "activity.recorded", "aggregate_id": "device-7", "data": data, **envelope}


def published_by(settings: Settings, subject: str) -> list[Stored]:
    stored = read_topic(settings, settings.topic("events"))
    return [s for s in stored if s.record["actor"] == subject]


def test_events_are_on_the_topic_with_the_envelope_the_gateway_gives(
    gateway: Settings, api: httpx.Client, subject: str
) -> None:
    given_id = str(uuid.uuid4())
    body = {
        "events": [
            activity(event_id=given_id, occurred_at="2025-03-01T12:00:00+02:00"),
            activity("logout", causation_id="cmd-1"),
        ]
    }
    answer = api.post("/api/v1/events", json=body, headers={"X-Correlation-Id": "corr-events-1"})

    assert answer.status_code == 202, answer.text
    assert REPLAYED not in answer.headers
    events = answer.json()["events"]
    assert events[0]["event_id"] == given_id and len(events) == 2
    stored = {s.record["event_id"]: s for s in published_by(gateway, subject)}
    assert sorted(stored) == sorted(e["event_id"] for e in events)
    for event in events:
        found = stored[event["event_id"]]
        assert event["position"] == f"{found.partition}-{found.offset}"
        assert found.key == b"device-7"
        assert found.record["type"] == "activity.recorded"
        assert found.record["aggregate_type"] == "activity"
        assert found.record["aggregate_version"] == 0
        assert found.record["correlation_id"] == "corr-events-1"
    first, second = stored[given_id].record, stored[events[1]["event_id"]].record
    assert first["occurred_at"].isoformat() == "2025-03-01T10:00:00+00:00"
    assert (first["causation_id"], second["causation_id"]) == (None, "cmd-1")
    assert second["data"] == {**activity()["data"], "kind": "logout"}


def test_a_field_actor_is_refused_rather_than_trusted(api: httpx.Client) -> None:
    answer = api.post("/api/v1/events", json={"events": [activity(actor="admin")]})
    refused = assert_problem(answer, 422, "invalid-events")
    assert refused["errors"] == [{"pointer": "/events/0/actor", "detail": "unknown field"}]


def test_events_not_matching_their_schema_get_422_with_pointers_and_nothing_is_written(
    gateway: Settings, api: httpx.Client, subject: str
) -> None:
    bad_data = activity()
    bad_data["data"] = {"kind": 7, "attributes": {"ip": 1}, "extra": True}
    body = {
        "events": [
            activity(),  # a good one: the batch is refused whole
            bad_data,
            {"type": "page.viewed", "aggregate_id": "x", "data": {}},
            {**activity(event_id="bad id!"), "occurred_at": "yesterday"},
            "not an event",
        ]
    }
    refused = assert_problem(api.post("/api/v1/events", json=body), 422, "invalid-events")

    assert {(e["pointer"], e["detail"]) for e in refused["errors"]} == {
        ("/events/1/data/extra", "unknown field"),
        ("/events/1/data/kind", "must be a string"),
        ("/events/1/data/subject_id", "is required"),
        ("/events/1/data/attributes/ip", "must be a string"),
        ("/events/2/type", "is not an event type under schemas/events"),
        ("/events/3/event_id", "ids are 1-128 characters of letters, digits, _ . : -"),
        ("/events/3/occurred_at", "must be an ISO-8601 date-time with a timezone"),
        ("/events/4", "must be an object"),
    }
    assert published_by(gateway, subject) == []


def test_command_owned_types_are_refused_even_with_the_scope(
    gateway: Settings, api: httpx.Client, subject: str
) -> None:
    registered = {"type": "user.registered", "aggregate_id": "ada",
                  "data": {"email": "ada@example.com", "name": "Ada"}}  # fmt: skip
    delivered = {"type": "notification.delivered", "aggregate_id": "n-1", "data": {}}
    body = {"events": [activity(), registered, delivered]}
    refused = assert_problem(api.post("/api/v1/events", json=body), 403, "event-type-owned")

    assert [(e["pointer"], e["detail"]) for e in refused["errors"]] == [
        ("/events/1/type", "user.registered is written only by the command processor"),
        ("/events/2/type", "notification.delivered is written only by the notifier"),
    ]
    assert published_by(gateway, subject) == []


def test_a_token_without_the_scope_is_refused(gateway: Settings, subject: str) -> None:
    body = {"events": [activity()]}
    url = f"http://127.0.0.1:{gateway.gateway_port}/api/v1/events"
    assert_problem(httpx.post(url, json=body), 401, "missing-token")
    with api_client(gateway, subject, list(DEFAULT_SCOPES)) as user:
        assert_problem(user.post("/api/v1/events", json=body), 403, "insufficient-scope")
    assert published_by(gateway, subject) == []


def test_oversized_bodies_and_batches_get_413(gateway: Settings, api: httpx.Client) -> None:
    huge = activity()
    huge["data"]["attributes"] = {"blob": "x" * gateway.max_body_bytes}
    assert_problem(api.post("/api/v1/events", json={"events": [huge]}), 413, "body-too-large")
    many = {"events": [activity() for _ in range(MAX_EVENTS + 1)]}
    too_many = assert_problem(api.post("/api/v1/events", json=many), 413, "too-many-events")
    assert too_many["max_events"] == MAX_EVENTS


def test_a_repeated_event_id_is_answered_as_before_and_written_once(
    gateway: Settings, api: httpx.Client, subject: str
) -> None:
    event_id = str(uuid.uuid4())
    body = {"events": [activity(event_id=event_id)]}
    first = api.post("/api/v1/events", json=body)
    again = api.post("/api/v1/events", json=body)
    raced = {"events": [activity(event_id=str(uuid.uuid4()))]}
    with ThreadPoolExecutor(4) as pool:  # a new id, sent at once over several connections
        racing = list(pool.map(lambda _: api.post("/api/v1/events", json=raced), range(4)))
    # a batch holding it and a new event: only the new one is written
    mixed = api.post("/api/v1/events", json={"events": [activity(event_id=event_id), activity()]})

    assert first.status_code == 202, first.text
    assert REPLAYED not in first.headers
    assert (again.status_code, again.json(), again.headers[REPLAYED]) == (202, first.json(), "true")
    assert [r.status_code for r in racing] == [202] * 4
    assert len({str(r.json()) for r in racing}) == 1
    assert sorted(REPLAYED in r.headers for r in racing) == [False, True, True, True]
    assert mixed.status_code == 202 and REPLAYED not in mixed.headers
    assert mixed.json()["events"][0] == first.json()["events"][0]
    ids = [s.record["event_id"] for s in published_by(gateway, subject)]
    expected = [event_id, raced["events"][0]["event_id"], mixed.json()["events"][1]["event_id"]]
    assert sorted(ids) == sorted(expected)


def test_an_event_id_naming_another_event_gets_409(
    gateway: Settings, api: httpx.Client, subject: str
) -> None:
    event_id = str(uuid.uuid4())
    assert api.post("/api/v1/events", json={"events": [activity(event_id=event_id)]}).is_success
    other = {"events": [activity("logout", event_id=event_id)]}
    conflict = assert_problem(api.post("/api/v1/events", json=other), 409, "event-id-conflict")
    assert conflict["errors"][0]["pointer"] == "/events/0/event_id"
    with api_client(gateway, f"{subject}-b", [PUBLISH_EVENTS]) as another_service:
        same = {"events": [activity(event_id=event_id)]}
        assert_problem(another_service.post("/api/v1/events", json=same), 409, "event-id-conflict")
    assert [s.record["data"]["kind"] for s in published_by(gateway, subject)] == ["login"]


def test_kafka_down_gets_503_and_the_event_id_stays_free(settings: Settings) -> None:
    dead = with_free_ports(settings).model_copy(
        update={"kafka_bootstrap": f"127.0.0.1:{free_port()}", "produce_timeout_ms": 1500}
    )
    migrate(dead.resolved_database_url)
    gateway = ServiceProcess("gateway", dead)
    try:
        gateway.start(probe="/healthz")
        with api_client(dead, "svc-dead", [PUBLISH_EVENTS]) as api:
            body = {"events": [activity(event_id="kept-free-1")]}
            refused = [api.post("/api/v1/events", json=body) for _ in range(2)]
    finally:
        gateway.stop()

    for answer in refused:
        assert_problem(answer, 503, "log-unavailable")
        assert answer.headers["retry-after"] == "5"
    with psycopg.connect(dead.resolved_database_url) as conn:
        rows = conn.execute("SELECT count(*) FROM public.published_events").fetchone()
    assert rows == (0,)
