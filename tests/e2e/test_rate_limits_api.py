"""Rate limits and concurrency caps against the whole stack (gateway, command processor,
projector as processes), with limits low enough to reach in a test."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from stack import prepared, running
from test_http_api import assert_problem
from test_notifications_api import Client

from infra.config.settings import Settings

NOTIFY = ["notifications:write"]
INGEST = ["analytics:write", "analytics:ingest"]
# A position past the log's end: the wait runs out, then it is found to name no event (400).
AHEAD = "0-999999999999"


@pytest.fixture(scope="module")
def stack(module_settings: Settings) -> Iterator[Settings]:
    settings = prepared(
        module_settings,
        rate_limit_notifications="100/minute",
        rate_limit_ingest="1000/minute",
        rate_limit_anonymous="20/minute",
        rate_limit_after_waits=2,
        rate_limit_open_streams=2,
        read_your_writes_timeout_s=3.0,
    )
    with running(settings, ("command-processor", "projector", "gateway")):
        yield settings


@pytest.fixture(scope="module")
def client(stack: Settings) -> Iterator[Client]:
    made = Client(stack)
    yield made
    made.http.close()


def assert_refused(response: httpx.Response, code: str, policy: str) -> None:
    assert_problem(response, 429, code)
    assert response.json()["violated-policies"] == [policy]
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert response.headers["ratelimit"].startswith(f'"{policy}";r=')


def test_notification_requests_past_the_limit_get_429_and_others_are_not_affected(
    client: Client,
) -> None:
    ann, bob = client.new_user(), client.new_user()
    data = {"user": {"name": "Ann", "email": "ann@example.com"}}  # what the template needs
    body = {"user_id": ann, "template": "welcome", "data": data}
    answers = [client.notify(ann, NOTIFY, **body) for _ in range(300)]
    assert [a.status_code for a in answers] == [202] * 100 + [429] * 200
    assert answers[0].headers["ratelimit-policy"] == '"notifications";q=100;w=60'
    assert_refused(answers[-1], "rate-limited", "notifications")
    assert answers[-1].headers["ratelimit"].startswith('"notifications";r=0;t=')
    assert answers[-1].json()["title"] == "Too Many Requests"
    assert client.notify(bob, NOTIFY, **{**body, "user_id": bob}).status_code == 202


def test_ingest_is_limited_in_events(client: Client) -> None:
    sender = client.as_(f"svc-{uuid.uuid4().hex[:8]}", INGEST)
    at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    event = {"type": "page.view", "user_id": "u-1", "timestamp": at, "data": {"page": "/"}}
    batch = "/api/v1/ingest/batch"
    too_big = client.http.post(batch, json=[event] * 1001, headers=sender)
    assert_problem(too_big, 413, "over-rate-limit")  # more than the whole budget, ever
    first = client.http.post(batch, json=[event] * 600, headers=sender)
    assert first.status_code == 202, first.text
    assert first.headers["ratelimit-policy"] == '"ingest";q=1000;w=60'
    refused = client.http.post(batch, json=[event] * 600, headers=sender)
    assert_refused(refused, "rate-limited", "ingest")
    # 1000 - 1 (the 413) - 600 - 1 (the refused batch: one unit, charged before its events
    # were counted) leaves 398: a batch of 398 passes, and then not even one event does.
    assert refused.headers["ratelimit"].startswith('"ingest";r=398;')
    assert client.http.post(batch, json=[event] * 398, headers=sender).status_code == 202
    single = client.http.post("/api/v1/ingest/event", json=event, headers=sender)
    assert_refused(single, "rate-limited", "ingest")
    assert single.headers["ratelimit"].startswith('"ingest";r=0;')


def test_after_waits_are_capped_per_subject(client: Client) -> None:
    reader, other = client.as_("reader", ["users:read"]), client.as_("other", ["users:read"])

    def wait_ahead(headers: dict[str, str]) -> httpx.Response:
        return client.http.get("/api/v1/users", params={"after": AHEAD}, headers=headers)

    with ThreadPoolExecutor(2) as pool:
        waiting = [pool.submit(wait_ahead, reader) for _ in range(2)]
        time.sleep(1.0)  # both are polling now (they wait 3 s)
        refused = wait_ahead(reader)
        assert_problem(refused, 429, "too-many-concurrent")
        assert refused.headers["retry-after"] == "3"
        assert '"after-waits";q=2;qu="concurrent-requests"' in refused.headers["ratelimit-policy"]
        assert client.http.get("/api/v1/users", headers=reader).status_code == 200  # no wait
        assert_problem(wait_ahead(other), 400, "position-not-in-log")  # another subject waited
        for done in waiting:
            assert_problem(done.result(), 400, "position-not-in-log")
    assert_problem(wait_ahead(reader), 400, "position-not-in-log")  # the slots are free again


def test_open_streams_are_capped_per_subject(client: Client) -> None:
    token = client.as_("watcher", ["analytics:read"])["Authorization"].removeprefix("Bearer ")
    url, base = "/api/v1/analytics/stream", client.http.base_url

    def stream(stack: ExitStack) -> httpx.Response:
        """A stream opened on a connection of its own, closed with `stack`."""
        http = stack.enter_context(httpx.Client(base_url=base, timeout=30))
        return stack.enter_context(http.stream("GET", url, params={"access_token": token}))

    with ExitStack() as first, ExitStack() as second:
        assert stream(first).status_code == 200 and stream(second).status_code == 200
        refused = client.http.get(url, params={"access_token": token})
        assert_problem(refused, 429, "too-many-concurrent")
        assert refused.json()["violated-policies"] == ["open-streams"]
        policies = refused.headers["ratelimit-policy"]
        assert '"open-streams";q=2;qu="concurrent-requests"' in policies
        assert '"streams";q=60;w=60' in policies  # the class's own rate, in the same list
        second.close()
        # The slot is free once the gateway has seen the disconnect.
        deadline = time.monotonic() + 10
        while (status := stream(second).status_code) == 429 and time.monotonic() < deadline:
            second.close()
            time.sleep(0.2)
        assert status == 200


def test_requests_without_a_valid_token_are_limited_per_client_address(client: Client) -> None:
    statuses = [client.http.get("/api/v1/users").status_code for _ in range(25)]
    assert statuses == [401] * 20 + [429] * 5
    # A valid token is charged to its subject, not to the address.
    assert client.http.get("/api/v1/users", headers=client.as_("x", ["users:read"])).is_success
