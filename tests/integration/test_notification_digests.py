"""Digests end to end: low-priority notifications of one user go out as one message per window,
and a digest still collecting survives a SIGKILL of the notifier."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from notifier_helpers import saga_events, webhook_user
from stack import ServiceProcess, api_client, prepared, running
from webhook_sink import SinkLog, wait_until

from infra.config.settings import Settings
from infra.local.lag import group_lag
from sagas.notification.request import NotificationSubmitted, submission
from schemas.codec import AvroCodec
from streams.kafka.async_producer import AsyncProducer
from streams.kafka.config import producer_config
from streams.notification_requests import request_record

WINDOW_S = 8
SERVICES = ("command-processor", "projector", "gateway", "notifier")
ACTORS = ("Grace", "Alan", "Edsger")


@pytest.fixture(scope="module")
def services(
    module_settings: Settings, sink: tuple[SinkLog, int]
) -> Iterator[dict[str, ServiceProcess]]:
    settings = prepared(
        module_settings,
        delivery_allow_list=f"127.0.0.1:{sink[1]}",
        notification_digest_window_s=WINDOW_S,
    )
    with running(settings, SERVICES) as started:
        yield started


def activity(user_id: str, actor: str) -> NotificationSubmitted:
    data = {
        "actor": {"name": actor},
        "action": "commented on",
        "target": {"name": "Q3", "url": "u"},
    }
    return submission(
        user_id=user_id,
        template="activity",
        data=data,
        requested_by="test",
        submitted_at=int(time.time() * 1000),
        notification_id=str(uuid.uuid4()),
    )


def submit_early_in_a_window(settings: Settings, requests: list[NotificationSubmitted]) -> None:
    """Right after a window starts, so all of them fall into the same one."""
    while time.time() % WINDOW_S > 1.0:
        time.sleep(0.05)

    async def send() -> None:
        codec, producer = AvroCodec(), AsyncProducer(producer_config(settings))
        topic = settings.topic("notification-requests")
        payloads = [(r.notification_id, codec.encode(r.TYPE, request_record(r))) for r in requests]
        try:
            await producer.send_many(topic, payloads)
        finally:
            producer.close()

    asyncio.run(send())


def digest_of(settings: Settings, member_id: str) -> str:
    events = saga_events(settings, member_id)
    assert [e["type"] for e in events] == ["notification.requested", "notification.digested"]
    digest_id: str = events[1]["data"]["digest_id"]
    return digest_id


def posts_to(log: SinkLog, path: str) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in log.snapshot() if r.path == path and r.status == 200]


def run_digest(
    services: dict[str, ServiceProcess], sink: tuple[SinkLog, int], path: str, kill: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    settings = services["notifier"].settings
    log, port = sink
    with api_client(settings, "ops", ["users:read", "users:write", "users:admin"]) as api:
        user_id = webhook_user(api, f"http://127.0.0.1:{port}{path}")
    members = [activity(user_id, actor) for actor in ACTORS]
    submit_early_in_a_window(settings, members)
    digest_id = wait_until(
        lambda: len(saga_events(settings, members[-1].notification_id)) == 2
        and digest_of(settings, members[-1].notification_id),
        30,
        "the last member to be digested",
    )
    if kill:
        wait_until(
            lambda: sum(
                e["type"] == "notification.digest_item_added"
                for e in saga_events(settings, digest_id)
            )
            == len(ACTORS),
            30,
            "the digest to hold every item",
        )
        services["notifier"].kill()
        services["notifier"].start()
    # Done for good: the digest completed (its post received before it was recorded
    # delivered) and the notifier took every request (none to start another digest).
    wait_until(
        lambda: saga_events(settings, digest_id)[-1]["type"] == "notification.completed",
        3 * WINDOW_S + 30,
        "the digest to complete",
    )
    wait_until(lambda: group_lag(settings, "notifier") == 0, 30, "the notifier to take all")
    assert {digest_of(settings, m.notification_id) for m in members} == {digest_id}
    return posts_to(log, path), saga_events(settings, digest_id)


def test_three_low_priority_notifications_arrive_as_one_digest(
    services: dict[str, ServiceProcess], sink: tuple[SinkLog, int]
) -> None:
    posts, digest = run_digest(services, sink, "/digest", kill=False)

    [post] = posts
    assert (post["template"], post["count"]) == ("digest", 3)
    summaries = [item["summary"] for item in post["items"]]
    assert sorted(summaries) == sorted(f"{actor} commented on Q3" for actor in ACTORS)
    assert [e["type"] for e in digest] == [
        "notification.requested",
        *["notification.digest_item_added"] * 3,
        "notification.digest_closed",
        "notification.rendered",
        "notification.attempt_started",
        "notification.delivered",
        "notification.completed",
    ]
    assert digest[0]["data"]["template"] == "digest"


# Its waits: the module's four starts when run alone, 30 + 30 s, a start, 3 windows + 30 s.
@pytest.mark.fault
@pytest.mark.timeout(360)
def test_a_digest_collecting_when_the_notifier_is_killed_is_sent_once(
    services: dict[str, ServiceProcess], sink: tuple[SinkLog, int]
) -> None:
    posts, digest = run_digest(services, sink, "/digest-after-kill", kill=True)

    [post] = posts
    assert post["count"] == 3
    assert digest[-1]["type"] == "notification.completed"
    assert sum(e["type"] == "notification.digest_closed" for e in digest) == 1
