"""The projector on real Kafka and PostgreSQL: read models, queries, exactly-once, dead letters."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from test_projection_support import (
    T0,
    EventWriter,
    all_caught_up,
    checkpoints,
    wait_until,
)

from infra.config.settings import Settings
from projections import queries
from projections.metrics import EVENTS_APPLIED
from projections.projector import Projector
from schemas.codec import MAGIC, AvroCodec
from streams.kafka.config import consumer_config
from streams.kafka.topics import ensure_topics


def at(second: int) -> str:
    return f"2025-01-01T00:00:{second:02d}.000Z"


def write_story(writer: EventWriter) -> None:
    """Two users and two workspaces; the tick of each event is its `at` second."""
    e = writer.event
    e("user.registered", "u1", {"email": "a@x.io", "name": "Ann", "locale": "fr"})  # 1
    e("user.profile_updated", "u1", {"name": "Anne", "email": None})
    sms = {"channel": "sms", "address": "+33", "enabled": False}
    e("user.preferences_set", "u1", {"channels": [sms], "quiet_hours": None})
    e("user.registered", "u2", {"email": "b@x.io", "name": "Bob"})
    e("user.deactivated", "u2", {"reason": "spam"})  # 5
    e("workspace.created", "w1", {"name": "Acme", "owner_id": "u1"})
    e("workspace.member_added", "w1", {"user_id": "u1", "role": "owner"})
    e("workspace.member_added", "w1", {"user_id": "u2", "role": "member"})
    e("workspace.member_removed", "w1", {"user_id": "u2"})
    e("workspace.member_added", "w1", {"user_id": "u2", "role": "admin"})  # 10
    e("workspace.renamed", "w1", {"name": "Acme 2"})
    e("workspace.created", "w2", {"name": "Beta", "owner_id": "u2"})
    e("workspace.member_added", "w2", {"user_id": "u2", "role": "owner"})
    e("workspace.archived", "w2", {"reason": "done"})
    e("activity.recorded", "x1", {"kind": "login", "subject_id": "u1", "attributes": {}})
    writer.outcome(
        "c1", "u9", status="rejected", version=None, position=None, event_ids=[],
        error_code="user.exists", error_kind="conflict", error_message="taken",
    )  # fmt: skip
    writer.outcome("c2", "u1", version=3, position="1-7")
    writer.flush()


async def test_read_models_and_queries(settings: Settings) -> None:
    ensure_topics(settings)
    writer = EventWriter(settings)
    write_story(writer)
    with Projector(settings) as projector:
        wait_until(all_caught_up(settings), what="projections")
        assert projector.ready()
    async with await psycopg.AsyncConnection.connect(settings.resolved_database_url) as conn:
        await check_users(conn)
        await check_workspaces(conn)
        await check_outcomes_and_positions(conn, settings, writer)


async def check_users(conn: psycopg.AsyncConnection[Any]) -> None:
    assert await queries.get_user(conn, "u1") == {
        "user_id": "u1", "email": "a@x.io", "name": "Anne", "locale": "fr", "status": "active",
        "deactivation_reason": None, "quiet_hours": None, "version": 3,
        "channels": [{"channel": "sms", "address": "+33", "enabled": False}],
        "registered_at": at(1), "updated_at": at(3),
        "workspaces": [{"workspace_id": "w1", "role": "owner"}],
    }  # fmt: skip
    u2 = await queries.get_user(conn, "u2")
    assert u2 is not None
    assert (u2["status"], u2["deactivation_reason"], u2["locale"], u2["version"]) == (
        "deactivated", "spam", None, 2,
    )  # fmt: skip
    assert u2["workspaces"] == [
        {"workspace_id": "w1", "role": "admin"},
        {"workspace_id": "w2", "role": "owner"},
    ]
    assert await queries.get_user(conn, "nobody") is None

    async def ids(**kwargs: Any) -> list[str]:
        return [u["user_id"] for u in await queries.list_users(conn, **kwargs)]

    assert await ids(workspace_id=None, limit=10, after=None) == ["u1", "u2"]
    assert await ids(workspace_id=None, limit=1, after=None) == ["u1"]
    assert await ids(workspace_id=None, limit=10, after="u1") == ["u2"]
    assert await ids(workspace_id="w2", limit=10, after=None) == ["u2"]
    assert await ids(workspace_id="w1", limit=10, after="u1") == ["u2"]
    assert await ids(workspace_id="w9", limit=10, after=None) == []


async def check_workspaces(conn: psycopg.AsyncConnection[Any]) -> None:
    assert await queries.get_workspace(conn, "w1") == {
        "workspace_id": "w1", "name": "Acme 2", "owner_id": "u1", "status": "active",
        "archive_reason": None, "version": 6, "created_at": at(6), "updated_at": at(11),
        "members": [
            {"user_id": "u1", "role": "owner", "added_at": at(7)},
            {"user_id": "u2", "role": "admin", "added_at": at(10)},
        ],
    }  # fmt: skip
    w2 = await queries.get_workspace(conn, "w2")
    assert w2 is not None
    assert (w2["status"], w2["archive_reason"], w2["version"]) == ("archived", "done", 3)
    assert await queries.get_workspace(conn, "w9") is None


async def check_outcomes_and_positions(
    conn: psycopg.AsyncConnection[Any], settings: Settings, writer: EventWriter
) -> None:
    c1 = await queries.get_command_outcome(conn, "c1")
    assert c1 is not None and isinstance(c1.pop("correlation_id"), str)
    assert c1 == {
        "command_id": "c1", "command_type": "RegisterUser", "aggregate_type": "user",
        "aggregate_id": "u9", "status": "rejected", "version": None, "position": None,
        "event_ids": [], "error_code": "user.exists", "error_kind": "conflict",
        "error_message": "taken", "decided_at": at(0),
    }  # fmt: skip
    c2 = await queries.get_command_outcome(conn, "c2")
    assert c2 is not None and (c2["status"], c2["version"], c2["position"]) == (
        "accepted", 3, "1-7",
    )  # fmt: skip
    names = ["users", "workspaces", "memberships"]
    for topic, partition, offset in writer.delivered:
        assert await queries.caught_up(conn, names, topic, partition, offset)
    _, partition, offset = writer.delivered[-1]
    events = settings.topic("events")
    assert not await queries.caught_up(conn, names, events, partition, offset + 1)
    assert not await queries.caught_up(conn, ["nope"], events, partition, 0)
    status = await queries.projection_status(conn)
    assert [(s["name"], s["live_version"]) for s in status] == [
        ("analytics", 1), ("anomalies", 1), ("command_outcomes", 1), ("memberships", 1),
        ("notifications", 1), ("users", 1), ("workspaces", 1),
    ]  # fmt: skip
    assert sum(c["next_offset"] for c in status[5]["checkpoints"]) == len(writer.delivered)


def test_restart_mid_stream_applies_every_event_once(settings: Settings) -> None:
    """Stop mid-stream and restart: each event is applied exactly once in total."""
    ensure_topics(settings)
    writer = EventWriter(settings)
    users, rounds = 40, 60
    produced = threading.Event()

    def produce() -> None:
        for user in range(users):
            writer.event("user.registered", f"u{user}", {"email": "e@x.io", "name": "n"})
        for n in range(rounds):
            for user in range(users):
                writer.event("user.profile_updated", f"u{user}", {"name": f"n{n}", "email": None})
            writer.flush()
        produced.set()

    applied = EVENTS_APPLIED.labels("users")
    before = applied._value.get()
    producer = threading.Thread(target=produce)
    with Projector(settings, projections=["users"], batch_size=50):
        producer.start()
        wait_until(lambda: sum(checkpoints(settings.resolved_database_url).values()) > 300)
    stopped_at = sum(checkpoints(settings.resolved_database_url).values())
    producer.join()
    assert produced.is_set() and stopped_at < users * (rounds + 1), "stopped mid-stream"
    with Projector(settings, projections=["users"], batch_size=50):
        wait_until(all_caught_up(settings, ("users",)), what="users")
    assert applied._value.get() - before == users * (rounds + 1)
    with psycopg.connect(settings.resolved_database_url) as conn:
        rows = conn.execute("SELECT DISTINCT name, version FROM public.users").fetchall()
    assert rows == [(f"n{rounds - 1}", rounds + 1)]


def test_undecodable_messages_are_dead_lettered_and_the_next_event_applied(
    settings: Settings,
) -> None:
    ensure_topics(settings)
    writer, codec = EventWriter(settings), AvroCodec()
    writer.event("user.registered", "u1", {"email": "a@x.io", "name": "Ann"})
    writer.raw("u1", b"plain bytes, not Avro")
    writer.raw("u1", MAGIC + b"\x00" * 8 + b"body")
    writer.raw("u1", codec.encode("user.registered", registered("u1"))[:-4])
    writer.event("user.profile_updated", "u1", {"name": "After", "email": None})
    writer.flush()
    with Projector(settings, projections=["users"]):
        wait_until(all_caught_up(settings, ("users",)), what="users")
    with psycopg.connect(settings.resolved_database_url) as conn:
        row = conn.execute("SELECT name, version FROM public.users").fetchall()
    assert row == [("After", 2)]
    letters = read_dead_letters(settings, codec, count=3)
    sources = [(r["source_topic"], r["source_partition"], r["source_offset"]) for r in letters]
    assert sources == writer.delivered[1:4]
    assert [r["reason"] for r in letters] == ["not_avro", "unknown_fingerprint", "corrupt_body"]
    assert {r["consumer"] for r in letters} == {"projection.users"}
    assert letters[0]["payload"] == b"plain bytes, not Avro"


def registered(user_id: str) -> dict[str, Any]:
    return {
        "event_id": "e", "type": "user.registered", "aggregate_type": "user",
        "aggregate_id": user_id, "aggregate_version": 2, "occurred_at": T0,
        "correlation_id": "c", "causation_id": None, "actor": "test",
        "data": {"email": "x@x.io", "name": "Corrupt", "locale": None},
    }  # fmt: skip


def read_dead_letters(settings: Settings, codec: AvroCodec, count: int) -> list[dict[str, Any]]:
    topic = settings.topic("deadletter")
    consumer = Consumer(consumer_config(settings, f"{settings.topic_prefix}.test-deadletters"))
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    records: list[dict[str, Any]] = []
    try:
        for _ in range(100):
            for message in consumer.consume(10, 0.2):
                assert message.error() is None
                records.append(codec.decode(message.value())[1])
            if len(records) >= count:
                break
    finally:
        consumer.close()
    assert len(records) == count, records
    return sorted(records, key=lambda r: r["source_offset"])
