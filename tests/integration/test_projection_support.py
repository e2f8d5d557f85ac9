"""Support for the projection and replay tests (no tests here): real Avro events on the
test's own topics, and waits on the read models in its own database."""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from aggregates.user.events import ChannelAddress
from infra.config.settings import Settings
from projections.catalog import PROJECTIONS, PROJECTOR_PROJECTIONS
from sagas.circuit.breaker import CircuitConfig
from sagas.notification.commands import RecordDelivery, StartNotification
from sagas.rendering import TemplateRenderer
from sagas.runtime.contents import RenderedContents
from sagas.runtime.engine import SagaEngine, Work
from schemas.codec import AvroCodec
from schemas.registry import default_registry
from schemas.tracking_plan import GENERIC_TYPE
from streams.kafka.config import consumer_config, producer_config
from streams.kafka.topics import Topics
from streams.notifier.records import saga_record

T0 = datetime(2025, 1, 1, tzinfo=UTC)
TEMPLATE_DATA = '{"user": {"name": "Ada", "email": "a@x.io"}, "app": {"name": "N", "url": "u"}}'
# Every table of every projection in the catalog, by its public view, with its primary key.
VIEWS = {
    table.name: ", ".join(table.key)
    for projection in PROJECTIONS.values()
    for table in projection.tables
}


class EventWriter:
    """Produces real Avro events, numbering each aggregate's versions itself."""

    def __init__(self, settings: Settings) -> None:
        self.codec = AvroCodec()
        self.topics = Topics.from_settings(settings)
        self.producer = Producer(producer_config(settings))
        self.versions: dict[str, int] = {}
        self.delivered: list[tuple[str, int, int]] = []  # (topic, partition, offset)
        self.ticks = 0
        self.sagas = SagaEngine(RenderedContents(TemplateRenderer()), CircuitConfig(5, 1_000))

    def event(self, type_: str, aggregate_id: str, data: dict[str, Any]) -> int:
        version = self.versions.get(aggregate_id, 0) + 1
        self.versions[aggregate_id] = version
        self.ticks += 1
        record = {
            "event_id": str(uuid.uuid4()),
            "type": type_,
            "aggregate_type": type_.split(".")[0],
            "aggregate_id": aggregate_id,
            "aggregate_version": version,
            "occurred_at": T0 + timedelta(seconds=self.ticks),
            "correlation_id": str(uuid.uuid4()),
            "causation_id": None,
            "actor": "test",
            "data": data,
        }
        self.raw(aggregate_id, self.codec.encode(type_, record))
        return version

    def outcome(self, command_id: str, aggregate_id: str, **fields: Any) -> None:
        record = {
            "command_id": command_id,
            "command_type": "RegisterUser",
            "aggregate_type": "user",
            "aggregate_id": aggregate_id,
            "correlation_id": str(uuid.uuid4()),
            "status": "accepted",
            "version": 1,
            "position": "0-0",
            "event_ids": [str(uuid.uuid4())],
            "decided_at": T0,
            **fields,
        }
        self._produce(
            self.topics.outcomes, aggregate_id, self.codec.encode("command.outcome", record)
        )

    def raw(self, key: str, value: bytes) -> None:
        self._produce(self.topics.events, key, value)

    def notification(self, saga_id: str, user_id: str, *, delivered: bool) -> None:
        """A notification saga's events as its engine decides them, on the saga topic."""
        self.ticks += 1
        at = int((T0 + timedelta(seconds=self.ticks)).timestamp() * 1000)
        address = ChannelAddress("webhook", f"https://example.com/{user_id}")
        start = StartNotification(
            notification_id=saga_id, user_id=user_id, template="welcome", data=TEMPLATE_DATA,
            requested_at=at, deadline=at + 3_600_000, preferences=(address,),
        )  # fmt: skip
        works = [[Work(saga_id, 0, start)]]
        if delivered:
            works.append([Work(saga_id, 0, RecordDelivery("webhook", 1, "HTTP 200", 5))])
        for step, batch in enumerate(works):
            for out in self.sagas.run(batch, at + step).events:
                record = saga_record(out, datetime.fromtimestamp((at + step) / 1000, UTC))
                value = self.codec.encode(out.event.TYPE, record)
                self._produce(self.topics.notifications, saga_id, value)

    def tracked(self, type_: str, user_id: str | None, data: dict[str, Any]) -> None:
        """A tracked event as ingestion writes it; a type the plan lacks goes as generic."""
        self.ticks += 1
        at = T0 + timedelta(seconds=self.ticks)
        record = {
            "event_id": str(uuid.uuid4()),
            "type": type_,
            "user_id": user_id,
            "anonymous_id": None if user_id else f"anon-{self.ticks % 5}",
            "timestamp": at,
            "timestamp_defaulted": False,
            "received_at": at + timedelta(seconds=self.ticks % 3),
            "source": "test",
            "data": data,
        }
        planned = type_ in default_registry().names("tracking")
        value = self.codec.encode(type_ if planned else GENERIC_TYPE, record)
        self._produce(self.topics.analytics, user_id or record["event_id"], value)

    def _produce(self, topic: str, key: str, value: bytes) -> None:
        try:
            self.producer.produce(topic, key=key.encode(), value=value, on_delivery=self._delivered)
        except BufferError:  # the local queue is full: wait for deliveries, then retry
            self.producer.flush(30)
            self.producer.produce(topic, key=key.encode(), value=value, on_delivery=self._delivered)

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        assert error is None, error
        if message.topic() == self.topics.events:
            self.delivered.append((message.topic(), message.partition(), message.offset()))

    def flush(self) -> None:
        assert self.producer.flush(30) == 0

    def user(self, user_id: str, updates: int = 2) -> None:
        """A user with a profile update, preferences and (every 7th) a deactivation."""
        self.event("user.registered", user_id, {"email": f"{user_id}@x.io", "name": user_id})
        for n in range(updates):
            self.event("user.profile_updated", user_id, {"name": f"{user_id}-{n}", "email": None})
        channels = [{"channel": "email", "address": f"{user_id}@x.io", "enabled": True}]
        quiet = {"start": "22:00", "end": "07:00", "timezone": "UTC"}
        self.event("user.preferences_set", user_id, {"channels": channels, "quiet_hours": quiet})
        if zlib.crc32(user_id.encode()) % 7 == 0:
            self.event("user.deactivated", user_id, {"reason": "left"})
        self.outcome(f"cmd-{user_id}", user_id)

    def workspace(self, workspace_id: str, owner: str, members: list[str]) -> None:
        """A workspace with members, a rename, a removal and (every 5th) an archive."""
        self.event("workspace.created", workspace_id, {"name": workspace_id, "owner_id": owner})
        self.event("workspace.member_added", workspace_id, {"user_id": owner, "role": "owner"})
        for member in members:
            added = {"user_id": member, "role": "member"}
            self.event("workspace.member_added", workspace_id, added)
        self.event("workspace.renamed", workspace_id, {"name": f"{workspace_id}-renamed"})
        if members:
            self.event("workspace.member_removed", workspace_id, {"user_id": members[0]})
        if zlib.crc32(workspace_id.encode()) % 5 == 0:
            self.event("workspace.archived", workspace_id, {"reason": None})


def high_watermarks(settings: Settings, topic: str) -> dict[int, int]:
    consumer = Consumer(consumer_config(settings, f"{settings.topic_prefix}.test-watermarks"))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
    finally:
        consumer.close()


def checkpoints(database_url: str) -> dict[tuple[str, str, int], int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT name, topic, partition, next_offset FROM public.projection_checkpoints"
        ).fetchall()
    return {(name, topic, partition): offset for name, topic, partition, offset in rows}


PROJECTION_TOPICS = {name: projection.topic for name, projection in PROJECTIONS.items()}


def all_caught_up(
    settings: Settings, names: tuple[str, ...] = PROJECTOR_PROJECTIONS, url: str | None = None
) -> Callable[[], bool]:
    """A check that the named projections (by default the projector's) have applied
    everything now on their topics."""
    ends = {
        logical: high_watermarks(settings, settings.topic(logical))
        for logical in set(PROJECTION_TOPICS.values())
    }
    wanted = {
        (name, settings.topic(PROJECTION_TOPICS[name]), partition): end
        for name in names
        for partition, end in ends[PROJECTION_TOPICS[name]].items()
        if end > 0
    }
    database_url = url or settings.resolved_database_url

    def check() -> bool:
        done = checkpoints(database_url)
        return all(done.get(key, 0) >= end for key, end in wanted.items())

    return check


def wait_until(check: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def dump_views(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every read model's full contents through the public views, ordered by primary key."""
    with psycopg.connect(database_url) as conn:
        return {
            view: conn.execute(f"SELECT * FROM public.{view} ORDER BY {key}").fetchall()
            for view, key in VIEWS.items()
        }


def populate(writer: EventWriter, prefix: str, users: int, workspaces: int) -> None:
    """`users` users and `workspaces` workspaces of three members each, ids under `prefix`."""
    ids = [f"{prefix}-u{i:04d}" for i in range(users)]
    for user_id in ids:
        writer.user(user_id)
    for n in range(workspaces):
        members = [ids[(n * 7 + k) % users] for k in range(1, 4)]
        writer.workspace(f"{prefix}-w{n:04d}", ids[n % users], members)


def populate_stream_views(writer: EventWriter, prefix: str, count: int) -> None:
    """Rows for the views beyond users and workspaces: notifications, tracked events
    (planned and generic) and anomalies, ids under `prefix`."""
    for n in range(count):
        user_id = f"{prefix}-u{n:04d}"
        writer.notification(f"{prefix}-n{n:04d}", user_id, delivered=n % 3 != 0)
        page = {"page": f"/p{n % 4}", "referrer": None, "duration_ms": 100 * n}
        writer.tracked("page.view", user_id if n % 2 else None, page)
        writer.tracked("signup.clicked", user_id, {"properties": {"plan": f"p{n % 2}", "n": n}})
        start = T0 + timedelta(minutes=n)
        writer.event(
            "analytics.anomaly_detected",
            f"{prefix}-a{n:04d}",
            {
                "event_type": "page.view", "granularity": "minute", "window_start": start,
                "window_end": start + timedelta(minutes=1), "direction": "up",
                "expected": 1.0, "observed": 9.0 + n, "score": 4.5, "severity": "warning",
                "breakdown_property": None, "breakdown_value": None,
                "breakdown_expected": None, "breakdown_observed": None, "detected_at": start,
            },
        )  # fmt: skip
