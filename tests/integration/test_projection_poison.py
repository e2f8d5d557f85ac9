"""Poison events on real Kafka and PostgreSQL: an event that decodes but cannot be applied
is tried three times, dead-lettered with the projection and the error, and passed over."""

from __future__ import annotations

from typing import Any

import psycopg
from test_projection_support import EventWriter, all_caught_up, wait_until
from topic_reading import read_topic

from infra.config.settings import Settings
from projections.metrics import EVENTS_APPLIED, RETRYING
from projections.projector import Projector
from projections.replay import replay
from streams.kafka.dead_letters import DEAD_LETTERS
from streams.kafka.topics import ensure_topics


def test_a_poison_event_is_dead_lettered_and_later_events_applied_once(
    settings: Settings,
) -> None:
    ensure_topics(settings)
    writer = EventWriter(settings)

    def e(type_: str, user_id: str, data: dict[str, Any]) -> None:
        writer.event(type_, user_id, data)
        writer.flush()  # one at a time: writer.delivered in the order written

    e("user.registered", "u1", {"email": "a@x.io", "name": "Ann"})
    e("user.registered", "u2", {"email": "b@x.io", "name": "Bob"})
    # A valid Avro string, which PostgreSQL refuses in a text column: it crashed the projector.
    e("user.registered", "u3", {"email": "c@x.io", "name": "Eve\u0000"})
    e("user.profile_updated", "u1", {"name": "Anne", "email": None})
    e("user.registered", "u4", {"email": "d@x.io", "name": "Dan"})
    e("user.profile_updated", "u2", {"name": "Bobby", "email": None})
    applied = EVENTS_APPLIED.labels("users")
    dead = DEAD_LETTERS.labels(consumer="projection.users", reason="handler_failed")
    applied_before, dead_before = applied._value.get(), dead._value.get()
    problems: set[str] = set()
    caught_up = all_caught_up(settings, ("users",))

    def caught_up_watching(projector: Projector) -> bool:
        problems.update(projector.watchdog.readiness().problems)
        return caught_up()

    with Projector(settings, projections=["users"]) as projector:
        wait_until(lambda: caught_up_watching(projector), what="users past the poison event")
        wait_until(lambda: projector.watchdog.readiness().ok, what="ready again")
        assert projector.ready()
    assert "projection users retrying" in problems  # not ready while it tried again
    assert applied._value.get() - applied_before == 5  # each good event exactly once
    assert dead._value.get() - dead_before == 1
    assert RETRYING.labels("users")._value.get() == 0
    assert users(settings) == [("u1", "Anne", 2), ("u2", "Bobby", 2), ("u4", "Dan", 1)]

    [letter] = [s.record for s in read_topic(settings, settings.topic("deadletter"))]
    assert (letter["source_topic"], letter["source_partition"], letter["source_offset"]) == (
        writer.delivered[2]
    )
    assert (letter["reason"], letter["consumer"]) == ("handler_failed", "projection.users")
    assert letter["detail"].startswith("projection users failed on user.registered: DataError:")
    assert "NUL" in letter["detail"]

    replay(settings, "users", progress=False)  # a rebuild passes over it at once
    assert users(settings) == [("u1", "Anne", 2), ("u2", "Bobby", 2), ("u4", "Dan", 1)]
    assert len(read_topic(settings, settings.topic("deadletter"))) == 1


def users(settings: Settings) -> list[tuple[str, str, int]]:
    with psycopg.connect(settings.resolved_database_url) as conn:
        query = "SELECT user_id, name, version FROM public.users ORDER BY user_id"
        return [(u, n, v) for u, n, v in conn.execute(query).fetchall()]
