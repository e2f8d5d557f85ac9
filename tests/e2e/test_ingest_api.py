"""Analytics ingestion over HTTP against the real gateway process, read back from Kafka.

Each test sends as a subject of its own, so the records it finds on the shared topics
(the `source` of every record) are its own.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from stack import ServiceProcess, api_client, prepared, running
from test_http_api import assert_problem
from topic_reading import read_topic

from gateway.auth import TokenVerifier
from infra.config.settings import Settings
from infra.local.processes import free_port
from infra.local.service_env import with_free_ports

WRITE = ["analytics:write", "analytics:ingest"]  # a server, ingesting for many users
NDJSON = {"Content-Type": "application/x-ndjson"}


@pytest.fixture(scope="module")
def gateway(module_settings: Settings) -> Iterator[Settings]:
    settings = prepared(module_settings)
    with running(settings, ("gateway",)):
        yield settings


@pytest.fixture
def subject() -> str:
    return f"svc-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def api(gateway: Settings, subject: str) -> Iterator[httpx.Client]:
    with api_client(gateway, subject, WRITE) as client:
        yield client


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def page_view(user_id: str | None, page: str = "/dashboard", **extra: Any) -> dict[str, Any]:
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    return {"type": "page.view", "user_id": user_id, "timestamp": iso(at),
            "data": {"page": page}, **extra}  # fmt: skip


def messages(settings: Settings, logical: str, source: str) -> list[tuple[str, bytes | None, Any]]:
    """(schema name, key, record) of every event on the topic that `source` sent; the key of
    an event in a collector batch is its batch's."""
    stored = read_topic(settings, settings.topic(logical))
    return [(s.schema, s.key, s.record) for s in stored if s.record["source"] == source]


def test_one_event_is_acknowledged_once_on_the_analytics_topic(
    gateway: Settings, api: httpx.Client, subject: str
) -> None:
    event = page_view("u-1")
    event["data"]["referrer"] = "https://example.com"
    before = datetime.now(UTC).replace(microsecond=0)
    response = api.post("/api/v1/ingest/event", json=event)
    after = datetime.now(UTC)
    assert response.status_code == 202, response.text
    body = response.json()
    [event_id] = body["event_ids"]
    assert body == {"accepted": 1, "rejected": 0, "event_ids": [str(uuid.UUID(event_id))]}
    [(schema, key, record)] = messages(gateway, "analytics", subject)
    assert (schema, key) == ("page.view", b"u-1")
    assert before <= record.pop("received_at") <= after
    assert record == {
        "event_id": event_id,
        "type": "page.view",
        "user_id": "u-1",
        "anonymous_id": None,
        "timestamp": datetime.fromisoformat(event["timestamp"]),
        "timestamp_defaulted": False,
        "source": subject,
        "data": {"page": "/dashboard", "referrer": "https://example.com", "duration_ms": None},
    }
    assert messages(gateway, "analytics-rejected", subject) == []


def test_anonymous_and_unplanned_events_are_keyed_by_event_id(
    gateway: Settings, api: httpx.Client, subject: str
) -> None:
    event = {**page_view(None), "type": "button.clicked", "data": {"label": "Buy", "n": 2}}
    response = api.post("/api/v1/ingest/event", json={**event, "id": "client-id-1"})
    assert response.status_code == 202, response.text
    assert response.json()["event_ids"] == ["client-id-1"]
    [(schema, key, record)] = messages(gateway, "analytics", subject)
    assert (schema, key, record["type"]) == ("analytics.generic", b"client-id-1", "button.clicked")
    assert record["data"] == {"properties": {"label": "Buy", "n": 2}}


def test_a_bad_single_event_is_422_and_kept_on_the_rejected_topic(
    gateway: Settings, api: httpx.Client, subject: str
) -> None:
    event = {"type": "page.view", "timestamp": "2026-01-01T12:00:00", "data": {}}
    body = assert_problem(api.post("/api/v1/ingest/event", json=event), 422, "invalid-events")
    assert body["errors"] == [
        {"index": 0, "pointer": "/timestamp", "detail": "must have a timezone, e.g. Z or +02:00"},
        {"index": 0, "pointer": "/data/page", "detail": "is required"},
    ]
    assert (body["accepted"], body["rejected"]) == (0, 1)
    not_object = assert_problem(api.post("/api/v1/ingest/event", json=[1]), 422, "invalid-events")
    assert not_object["errors"] == [{"index": 0, "pointer": "/", "detail": "must be an object"}]
    rejected = [record for _, _, record in messages(gateway, "analytics-rejected", subject)]
    assert [(r["index"], r["errors"], json.loads(r["payload"])) for r in rejected] == [
        (0, [{"pointer": "/timestamp", "detail": "must have a timezone, e.g. Z or +02:00"},
             {"pointer": "/data/page", "detail": "is required"}], event),
        (0, [{"pointer": "", "detail": "must be an object"}], [1]),
    ]  # fmt: skip


def batch_with_bad_items(user: str) -> list[Any]:
    return [
        page_view(user, "/a"),
        {**page_view(user), "data": {"page": 5}},
        page_view(user, "/b"),
        {**page_view(user), "timestamp": iso(datetime.now(UTC) + timedelta(hours=1))},
        "not an event",
        {**page_view(None), "type": "signup.started", "data": {"plan": ["pro"]}},
    ]


BAD_ITEM_ERRORS = [
    {"index": 1, "pointer": "/1/data/page", "detail": "must be a string"},
    {"index": 4, "pointer": "/4", "detail": "must be an object"},
    {
        "index": 5,
        "pointer": "/5/data/plan",
        "detail": "must be null, a boolean, a number or a string",
    },
]  # and index 3, whose detail names the server's clock


def check_partial_batch(settings: Settings, response: httpx.Response, subject: str) -> None:
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"], len(body["event_ids"])) == (2, 4, 2)
    future = body["errors"].pop(1)
    assert future["index"] == 3 and future["pointer"] == "/3/timestamp"
    assert future["detail"].startswith("is 3") and "at most 300 s is tolerated" in future["detail"]
    assert body["errors"] == BAD_ITEM_ERRORS
    accepted = messages(settings, "analytics", subject)
    assert sorted(r["data"]["page"] for _, _, r in accepted) == ["/a", "/b"]
    assert sorted(r["event_id"] for _, _, r in accepted) == sorted(body["event_ids"])
    rejected = sorted((r["index"], r["errors"]) for _, _, r in messages(
        settings, "analytics-rejected", subject))  # fmt: skip
    assert [index for index, _ in rejected] == [1, 3, 4, 5]
    assert rejected[0][1] == [{"pointer": "/data/page", "detail": "must be a string"}]


def test_a_json_batch_with_bad_items_accepts_the_good_ones(
    gateway: Settings, api: httpx.Client, subject: str
) -> None:
    response = api.post("/api/v1/ingest/batch", json=batch_with_bad_items("u-json"))
    check_partial_batch(gateway, response, subject)


def test_an_ndjson_batch_with_bad_items_accepts_the_good_ones(
    gateway: Settings, api: httpx.Client, subject: str
) -> None:
    lines = [json.dumps(item) for item in batch_with_bad_items("u-ndjson")]
    lines.insert(2, "   ")  # blank lines are skipped and take no index
    body = "\n".join(lines) + "\n"
    response = api.post("/api/v1/ingest/batch", content=body, headers=NDJSON)
    check_partial_batch(gateway, response, subject)
    [(_, _, stored)] = [m for m in messages(gateway, "analytics-rejected", subject)
                        if m[2]["index"] == 4]  # fmt: skip
    assert stored["payload"] == '"not an event"'


def test_a_batch_with_nothing_good_is_422_with_every_error(
    gateway: Settings, api: httpx.Client, subject: str
) -> None:
    items = [{"type": "page.view"}, {**page_view("u"), "extra": 1}]
    body = assert_problem(api.post("/api/v1/ingest/batch", json=items), 422, "invalid-events")
    assert body["errors"] == [
        {"index": 0, "pointer": "/0/data/page", "detail": "is required"},
        {"index": 1, "pointer": "/1/extra", "detail": "unknown field"},
    ]
    assert (body["accepted"], body["rejected"]) == (0, 2)
    assert len(messages(gateway, "analytics-rejected", subject)) == 2
    assert messages(gateway, "analytics", subject) == []


def test_ten_thousand_events_are_taken_and_one_more_is_413(
    gateway: Settings, api: httpx.Client, subject: str
) -> None:
    event = page_view("u-many")
    ten_thousand = "\n".join([json.dumps(event)] * 10_000)
    response = api.post("/api/v1/ingest/batch", content=ten_thousand, headers=NDJSON)
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 10_000, "rejected": 0}  # no ids past 1,000
    assert len(messages(gateway, "analytics", subject)) == 10_000
    one_more = ten_thousand + "\n" + json.dumps(event)
    over = api.post("/api/v1/ingest/batch", content=one_more, headers=NDJSON)
    assert assert_problem(over, 413, "too-many-events")["max_events"] == 10_000
    as_array = api.post("/api/v1/ingest/batch", json=[event] * 10_001)
    assert_problem(as_array, 413, "too-many-events")
    assert len(messages(gateway, "analytics", subject)) == 10_000


def test_a_body_over_5_mib_is_413_declared_or_streamed(api: httpx.Client) -> None:
    limit = 5 * 1024 * 1024
    padding = {**page_view("u"), "data": {"page": "x" * limit}}
    too_big = json.dumps([padding]).encode()
    assert_problem(api.post("/api/v1/ingest/batch", content=too_big), 413, "body-too-large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        for start in range(0, len(too_big), 64 * 1024):
            yield too_big[start : start + 64 * 1024]

    streamed = api.post("/api/v1/ingest/batch", content=chunks())
    assert_problem(streamed, 413, "body-too-large")
    just_fits = json.dumps([{**page_view("u"), "data": {"page": "x" * (limit - 300)}}])
    assert len(just_fits) < limit
    large = api.post("/api/v1/ingest/batch", content=just_fits)
    assert_problem(large, 422, "invalid-events")  # over the 1 MiB per event, not the body
    assert "at most 1048576 are taken" in large.json()["errors"][0]["detail"]


def test_malformed_bodies_are_400_naming_where(api: httpx.Client) -> None:
    bad_utf8 = b'[{"type": "page.view", "data": {"page": "\xff"}}]'
    body = assert_problem(api.post("/api/v1/ingest/batch", content=bad_utf8), 400, "malformed-json")
    assert body["detail"] == "the body is not UTF-8 (byte 41, line 1)"
    lines = f'{json.dumps(page_view("u"))}\n\n{{"type": "page.view",\n'
    ndjson = api.post("/api/v1/ingest/batch", content=lines, headers=NDJSON)
    body = assert_problem(ndjson, 400, "malformed-json")
    assert body["line"] == 3 and body["detail"].startswith("line 3 is not JSON: ")
    array = api.post("/api/v1/ingest/batch", content=b'[{"type": 1},\n {')
    assert "at line 2 column 3" in assert_problem(array, 400, "malformed-json")["detail"]
    event = api.post("/api/v1/ingest/event", content=b'{"type": "\xc3"}')
    assert_problem(event, 400, "malformed-json")


def test_media_types_and_empty_batches(api: httpx.Client) -> None:
    form = api.post("/api/v1/ingest/batch", content=b"a=1", headers={"Content-Type": "text/csv"})
    assert_problem(form, 415, "unsupported-media-type")
    event = api.post("/api/v1/ingest/event", content=b"{}", headers=NDJSON)
    assert_problem(event, 415, "unsupported-media-type")
    assert_problem(api.post("/api/v1/ingest/batch", json=[]), 422, "empty-batch")
    empty_lines = api.post("/api/v1/ingest/batch", content=b"\n \n", headers=NDJSON)
    assert_problem(empty_lines, 422, "empty-batch")
    assert_problem(api.post("/api/v1/ingest/batch", json=page_view("u")), 422, "invalid-body")


def test_a_user_token_tracks_its_own_user_only(gateway: Settings) -> None:
    subject = f"user-{uuid.uuid4().hex[:12]}"
    with api_client(gateway, subject, ["analytics:write"]) as client:
        mine = client.post("/api/v1/ingest/batch", json=[page_view(None), page_view(subject)])
        assert mine.status_code == 202, mine.text
        theirs = client.post("/api/v1/ingest/event", json=page_view("alice"))
    assert_problem(theirs, 422, "invalid-events")
    assert theirs.json()["errors"] == [
        {"index": 0, "pointer": "/user_id", "detail": "naming another user needs the scope"
         " analytics:ingest"}
    ]  # fmt: skip
    stored = messages(gateway, "analytics", subject)
    assert [(key, record["user_id"]) for _, key, record in stored] == [
        (subject.encode(), subject)
    ] * 2
    [(_, _, refused)] = messages(gateway, "analytics-rejected", subject)
    assert "alice" in refused["payload"]


def test_ingesting_needs_a_token_with_analytics_write(gateway: Settings) -> None:
    url = f"http://127.0.0.1:{gateway.gateway_port}/api/v1/ingest/batch"
    assert_problem(httpx.post(url, json=[page_view("u")]), 401, "missing-token")
    with api_client(gateway, "reader", ["analytics:read", "users:write"]) as client:
        for path in ("/api/v1/ingest/batch", "/api/v1/ingest/event"):
            assert_problem(client.post(path, json=[]), 403, "insufficient-scope")


def test_events_get_503_when_kafka_is_unreachable(settings: Settings) -> None:
    dead = with_free_ports(settings).model_copy(
        update={"kafka_bootstrap": f"127.0.0.1:{free_port()}", "produce_timeout_ms": 1500}
    )
    gateway = ServiceProcess("gateway", dead)
    try:
        gateway.start(probe="/healthz")
        token = TokenVerifier(dead.resolved_jwt_secret(), dead.jwt_issuer, dead.jwt_audience).issue(
            "alice", WRITE
        )
        base = f"http://127.0.0.1:{dead.gateway_port}/api/v1/ingest"
        headers = {"Authorization": f"Bearer {token}"}
        # a good event, and a bad one: neither outcome may be answered before it is durable
        for path, body in (("/event", page_view("u")), ("/batch", [{"type": "x"}])):
            response = httpx.post(base + path, json=body, headers=headers, timeout=30)
            assert_problem(response, 503, "log-unavailable")
            assert response.headers["retry-after"] == "5"
    finally:
        gateway.stop()
