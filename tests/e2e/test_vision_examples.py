"""The seed vision's own examples, sent as written to the real gateway (issue 12, parts 4, 5).

    POST /api/v1/ingest/event {"type": "page.view", "userId": "123", "data": {"page": ...}}
    sendNotification({userId, template: "welcome", channels: [...], data: {name: "John"}})

The ingest example is accepted and stored with its receipt time, flagged as such; the
notification example is refused at once, naming each missing field, and accepted once the
template's data is given. Other users are refused as before.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from stack import prepared, running
from test_http_api import assert_problem
from topic_reading import read_topic

from gateway.auth import DEFAULT_SCOPES, TokenVerifier
from infra.config.settings import Settings

VISION_CHANNELS = ["email", "push", "slack"]


@pytest.fixture(scope="module")
def stack(module_settings: Settings) -> Iterator[Settings]:
    settings = prepared(module_settings)
    with running(settings, ("command-processor", "projector", "gateway")):
        yield settings


@pytest.fixture(scope="module")
def http(stack: Settings) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{stack.gateway_port}", timeout=30) as client:
        yield client


def as_(settings: Settings, subject: str, *extra: str) -> dict[str, str]:
    verifier = TokenVerifier(
        settings.resolved_jwt_secret(), settings.jwt_issuer, settings.jwt_audience
    )
    return {"Authorization": f"Bearer {verifier.issue(subject, [*DEFAULT_SCOPES, *extra])}"}


def vision_event(user_id: str) -> dict[str, Any]:
    return {"type": "page.view", "userId": user_id, "data": {"page": "/dashboard"}}


def stored(settings: Settings, event_id: str) -> dict[str, Any]:
    [record] = [
        m.record
        for m in read_topic(settings, settings.topic("analytics"))
        if m.record["event_id"] == event_id
    ]
    return record


def test_the_ingest_example_is_accepted_as_written(stack: Settings, http: httpx.Client) -> None:
    user = f"user{uuid.uuid4().hex[:8]}"
    answer = http.post("/api/v1/ingest/event", json=vision_event(user), headers=as_(stack, user))
    assert answer.status_code == 202, answer.text
    [event_id] = answer.json()["event_ids"]
    record = stored(stack, event_id)
    assert (record["user_id"], record["data"]["page"]) == (user, "/dashboard")
    assert record["timestamp_defaulted"] is True
    assert record["timestamp"] == record["received_at"]


def test_the_ingest_example_naming_another_user_needs_the_ingest_scope(
    stack: Settings, http: httpx.Client
) -> None:
    event = vision_event("user123")
    refused = http.post("/api/v1/ingest/event", json=event, headers=as_(stack, "mallory"))
    body = assert_problem(refused, 422, "invalid-events")
    assert body["errors"] == [
        {
            "index": 0,
            "pointer": "/userId",
            "detail": "naming another user needs the scope analytics:ingest",
        }
    ]
    server = as_(stack, "ingest-svc", "analytics:ingest")
    taken = http.post("/api/v1/ingest/event", json={**event, "anonymousId": "a-1"}, headers=server)
    assert taken.status_code == 202, taken.text
    record = stored(stack, taken.json()["event_ids"][0])
    assert (record["user_id"], record["anonymous_id"]) == ("user123", "a-1")


def registered(settings: Settings, http: httpx.Client) -> str:
    user = f"john{uuid.uuid4().hex[:8]}"
    body = {"email": f"{user}@example.com", "name": "John"}
    headers = {**as_(settings, user), "Prefer": "wait=15"}
    created = http.post("/api/v1/users", json=body, headers=headers)
    assert created.status_code == 201, created.text
    return user


def test_the_notification_example_is_refused_at_once_naming_the_missing_fields(
    stack: Settings, http: httpx.Client
) -> None:
    user = registered(stack, http)
    vision = {
        "userId": user,
        "template": "welcome",
        "channels": VISION_CHANNELS,
        "data": {"name": "John"},
    }
    refused = http.post("/api/v1/notifications", json=vision, headers=as_(stack, user))
    body = assert_problem(refused, 422, "invalid-body")
    assert body["errors"] == [
        {"pointer": "/data/user/email", "detail": "is required by the template"},
        {"pointer": "/data/user/name", "detail": "is required by the template"},
    ]
    vision["data"] = {"user": {"name": "John", "email": f"{user}@example.com"}}
    taken = http.post("/api/v1/notifications", json=vision, headers=as_(stack, user))
    assert taken.status_code == 202, taken.text


def test_a_push_only_request_needs_only_what_push_shows(
    stack: Settings, http: httpx.Client
) -> None:
    user = registered(stack, http)
    body = {"user_id": user, "template": "welcome", "channels": ["push"], "data": {}}
    refused = http.post("/api/v1/notifications", json=body, headers=as_(stack, user))
    assert [e["pointer"] for e in assert_problem(refused, 422, "invalid-body")["errors"]] == [
        "/data/user/name"
    ]
    body["data"] = {"user": {"name": "John"}}
    taken = http.post("/api/v1/notifications", json=body, headers=as_(stack, user))
    assert taken.status_code == 202, taken.text


def test_a_link_off_the_platform_is_refused_at_once(stack: Settings, http: httpx.Client) -> None:
    user = registered(stack, http)
    target = {"name": "Q3 plan", "url": "https://evil.example/phish"}
    data = {"actor": {"name": "Grace"}, "action": "commented on", "target": target}
    body = {"user_id": user, "template": "activity", "data": data}
    refused = http.post("/api/v1/notifications", json=body, headers=as_(stack, user))
    [error] = assert_problem(refused, 422, "invalid-body")["errors"]
    assert error["pointer"] == "/data/target/url"


def test_another_user_is_refused_before_any_data_is_looked_at(
    stack: Settings, http: httpx.Client
) -> None:
    user = registered(stack, http)
    vision = {"userId": user, "template": "welcome", "data": {"name": "John"}}
    refused = http.post("/api/v1/notifications", json=vision, headers=as_(stack, "mallory"))
    assert_problem(refused, 403, "insufficient-scope")
    both = {**vision, "user_id": user}
    twice = http.post("/api/v1/notifications", json=both, headers=as_(stack, user))
    errors = assert_problem(twice, 422, "invalid-body")["errors"]
    assert errors == [{"pointer": "/userId", "detail": "names the same field as /user_id"}]
