"""Evolution on the wire: every consumer reads an older schema version's bytes as the latest.

For every schema with more than one version (from the registry, so a new version is covered
without editing this file), an old writer's encoding goes onto a real topic, and each
consumer of that topic must do exactly what it does with the same record in the latest
version, whose new fields take their defaults. Two worlds, each with its own topics and
database, receive the same records: the old encoding in one, the latest in the other; their
outcomes, events, rows, deliveries and printed lines must be equal.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer
from conftest import isolated_settings
from stack import NEXUS, ServiceProcess, prepared
from test_projection_support import EventWriter, all_caught_up, dump_views, wait_until
from topic_reading import Stored, read_topic
from webhook_sink import SinkLog
from webhook_sink import wait_until as wait_for
from wire_versions import (
    SAMPLE_TIME,
    as_latest,
    encode_as,
    logical_topic,
    multi_version_names,
    older_versions,
    sample,
)

from aggregates.user.events import ChannelAddress
from infra.config.settings import Settings
from infra.local.service_env import environment
from projections.analytics.rollups import ROLLUPS
from projections.catalog import PROJECTIONS
from projections.migrations import migrate
from projections.projector import Projector
from sagas.circuit.breaker import CircuitConfig
from sagas.notification.commands import StartNotification
from sagas.rendering import TemplateRenderer
from sagas.runtime.contents import RenderedContents
from sagas.runtime.engine import SagaEngine, Work
from schemas.codec import AvroCodec
from schemas.registry import SchemaVersion, default_registry
from streams.command_processor import CommandProcessor
from streams.kafka.config import producer_config
from streams.kafka.partitioning import partition_for
from streams.kafka.topics import ensure_topics
from streams.notifier.rebuild import EVENT_TYPES as SAGA_EVENT_TYPES
from streams.notifier.records import saga_record

# Who reads each topic that carries a schema with several versions. A multi-version schema on
# a topic missing here fails `test_every_multi_version_schema_has_its_consumers_tested`.
# On `analytics` the projector stands for a replay (same runner code); the analytics worker
# keeps those rollups live.
CONSUMERS = {
    "commands": ("command-processor", "tail"),
    "events": ("projector", "tail"),
    "notifications": ("projector", "notifier", "tail"),
    "analytics": ("projector", "analytics-worker", "tail"),
}
MULTI_VERSION = multi_version_names()


def read_by(consumer: str) -> list[str]:
    return [n for n in MULTI_VERSION if consumer in CONSUMERS.get(logical_topic(n), ())]


def old_and_latest(name: str) -> list[tuple[SchemaVersion, str]]:
    """Every older version of `name`, each with an aggregate id of its own."""
    return [(old, f"{name}-v{old.version}") for old in older_versions(name)]


class Worlds:
    """The same records written old in one world and latest in the other."""

    def __init__(self, old: Settings, latest: Settings) -> None:
        self.old, self.latest = old, latest
        self.codec = AvroCodec()
        self.sides = [(world, Producer(producer_config(world))) for world in (old, latest)]

    def write(
        self, topic: str, key: str, old: SchemaVersion, record: dict[str, Any], partition: int = -1
    ) -> None:
        """`record` in `old`'s encoding to the old world, in the latest to the other."""
        values = (encode_as(old, record), self.codec.encode(old.name, as_latest(old.name, record)))
        for (world, producer), value in zip(self.sides, values, strict=True):
            producer.produce(world.topic(topic), value, key=key.encode(), partition=partition)

    def write_both(self, topic: str, key: str, value: bytes, partition: int = -1) -> None:
        for world, producer in self.sides:
            producer.produce(world.topic(topic), value, key=key.encode(), partition=partition)

    def flush(self) -> None:
        for _, producer in self.sides:
            assert producer.flush(30) == 0

    def both(self) -> tuple[Settings, Settings]:
        return self.old, self.latest


@pytest.fixture
def worlds(
    settings: Settings, kafka_bootstrap: str, pg_admin_url: str, tmp_path: Path
) -> Iterator[Worlds]:
    home = tmp_path / "latest"
    home.mkdir()
    with isolated_settings(kafka_bootstrap, pg_admin_url, home) as latest:
        old, latest = prepared(settings), prepared(latest)
        yield Worlds(old, latest)


def test_every_multi_version_schema_has_its_consumers_tested() -> None:
    assert MULTI_VERSION, "the registry holds no schema with two versions"
    for name in MULTI_VERSION:
        topic = logical_topic(name)
        assert topic in CONSUMERS, f"{name} travels on {topic}, whose consumers no test covers"
    consumers = {consumer for names in CONSUMERS.values() for consumer in names}
    assert consumers == set(WIRE_TESTS), "each consumer named above needs its wire test"
    assert set(read_by("command-processor")) == set(default_registry().names("commands")) & set(
        MULTI_VERSION
    )


@pytest.mark.parametrize("topic", sorted({logical_topic(n) for n in read_by("tail")}))
def test_tail_prints_an_old_version_as_the_latest(settings: Settings, topic: str) -> None:
    """Each old message is followed on its partition by its latest twin: the lines match."""
    ensure_topics(settings)
    producer, codec = Producer(producer_config(settings)), AvroCodec()
    names = [n for n in read_by("tail") if logical_topic(n) == topic]
    pairs = 0
    for name in names:
        for old, key in old_and_latest(name):
            record = sample(old, key)
            latest = codec.encode(name, as_latest(name, record))
            for value in (encode_as(old, record), latest):
                producer.produce(settings.topic(topic), value, key=key.encode())
            pairs += 1
    assert producer.flush(30) == 0

    tailed = subprocess.run(
        [NEXUS, "tail", topic, "--from-beginning", "--max", str(2 * pairs)],
        env=environment(settings), capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert tailed.returncode == 0, tailed.stderr
    lines = sorted(
        (json.loads(line) for line in tailed.stdout.splitlines()),
        key=lambda line: (line["partition"], line["offset"]),
    )
    assert len(lines) == 2 * pairs
    for old_line, latest_line in zip(lines[::2], lines[1::2], strict=True):
        assert "schema" in old_line, old_line
        name = old_line["schema"].split()[0]
        assert old_line["schema"] == default_registry().latest(name).label
        assert old_line["record"] == latest_line["record"], name


def test_the_command_processor_decides_old_commands_as_the_latest(worlds: Worlds) -> None:
    names = read_by("command-processor")
    # Creating commands first, closing ones last, so that most of them find their aggregate;
    # one aggregate of each type, and the registered user acts.
    ordered = sorted(
        names,
        key=lambda n: (
            not n.startswith(("Register", "Create")),
            n.startswith(("Archive", "Deactivate")),
            n,
        ),
    )
    for name in ordered:
        for old, command_id in old_and_latest(name):
            record = sample(old, "")
            aggregate_id = f"{record['aggregate_type']}-1"
            record.update(command_id=command_id, aggregate_id=aggregate_id, actor="user-1")
            worlds.write("commands", aggregate_id, old, record)
    worlds.flush()
    sent = sum(len(older_versions(n)) for n in names)

    outcomes = [decide(world, sent) for world in worlds.both()]

    old, latest = ([s.record for s in found] for found in outcomes)
    assert [o["status"] for o in old] == [o["status"] for o in latest]
    assert old == latest
    # Accepted, so the data was read too: a new command whose sample is refused needs a value
    # in wire_versions.STRINGS (or a place in the order above).
    assert [o for o in old if o["status"] != "accepted"] == []
    events = [sorted_records(read_topic(world, world.topic("events"))) for world in worlds.both()]
    assert events[0] == events[1]
    assert events[0], "no command was accepted"


def decide(settings: Settings, count: int) -> list[Stored]:
    """Runs a command processor until `count` outcomes are out; a fixed clock, so that two
    worlds decide at the same instant."""
    processor = CommandProcessor(settings, now=lambda: SAMPLE_TIME)
    stop = threading.Event()
    thread = threading.Thread(target=processor.run, args=(stop,), daemon=True)
    thread.start()
    try:
        return wait_until_found(settings, "outcomes", count)
    finally:
        stop.set()
        thread.join(30)


def wait_until_found(settings: Settings, logical: str, count: int) -> list[Stored]:
    deadline = time.monotonic() + 60
    while len(found := read_topic(settings, settings.topic(logical))) < count:
        assert time.monotonic() < deadline, f"{len(found)} of {count} on {logical}"
        time.sleep(0.2)
    return sorted(found, key=lambda s: (s.partition, s.offset))


def sorted_records(found: list[Stored]) -> list[dict[str, Any]]:
    return [s.record for s in sorted(found, key=lambda s: (s.partition, s.offset))]


def test_the_projector_folds_old_events_into_the_latest_rows(worlds: Worlds) -> None:
    names = read_by("projector")
    projections = tuple(p for p, spec in PROJECTIONS.items() if any(map(spec.handles, names)))
    for name in names:
        for old, key in old_and_latest(name):
            worlds.write(logical_topic(name), key, old, sample(old, key))
    worlds.flush()

    views = []
    for world in worlds.both():
        with Projector(world, projections=projections):
            wait_until(all_caught_up(world, projections), what=f"{projections} caught up")
        views.append(dump_views(world.resolved_database_url))

    tables = [t.name for p in projections for t in PROJECTIONS[p].tables]
    for table in tables:
        assert views[0][table] == views[1][table], table
    filled = {t for t in tables if views[0][t]}
    assert filled >= {PROJECTIONS[p].tables[0].name for p in projections}


def test_the_analytics_worker_rolls_up_old_tracked_events_as_the_latest(worlds: Worlds) -> None:
    names = read_by("analytics-worker")
    for name in names:
        for old, key in old_and_latest(name):
            worlds.write(logical_topic(name), key, old, sample(old, key))
    worlds.flush()
    sent = sum(len(older_versions(n)) for n in names)

    rollups = []
    for world in worlds.both():
        migrate(world.resolved_database_url)
        worker = ServiceProcess("analytics", world).start()
        try:
            wait_for(lambda w=world: minute_count(w) == sent, 60, "every event rolled up")
        finally:
            worker.stop()
        rollups.append(dump_views(world.resolved_database_url)[ROLLUPS.name])

    assert rollups[0] == rollups[1]
    assert {row[1] for row in rollups[0]} == {
        sample(older_versions(n)[0], "").get("type") for n in names
    }


def minute_count(settings: Settings) -> int:
    with psycopg.connect(settings.resolved_database_url) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(count), 0) FROM public.rollups WHERE granularity = 'minute'"
        ).fetchone()
    return int(row[0]) if row else 0


SAGA_DATA = json.dumps(
    {"user": {"name": "Ada", "email": "a@x.io"}, "app": {"name": "N", "url": "u"}}
)


@pytest.mark.parametrize("name", read_by("notifier"))
def test_the_notifier_delivers_an_old_saga_event_as_the_latest(
    worlds: Worlds, sink: tuple[SinkLog, int], name: str
) -> None:
    """A saga whose events up to the first of `name` were written old: the notifier takes
    it over and delivers as it does the latest."""
    assert name in SAGA_EVENT_TYPES, f"{name} is no saga event the notifier folds"
    log, port = sink
    notifiers = []
    for world, path in zip(worlds.both(), ("old", "latest"), strict=True):
        add_webhook_user(world, "user-1", f"http://127.0.0.1:{port}/{path}")
        allowed = prepared(world, delivery_allow_list=f"127.0.0.1:{port}")
        notifiers.append(allowed)
    for old, saga_id in old_and_latest(name):
        write_saga_until(worlds, old, saga_id)
    worlds.flush()

    sagas = {saga_id for _, saga_id in old_and_latest(name)}
    started = [ServiceProcess("notifier", s).start() for s in notifiers]
    try:
        for _, saga_id in old_and_latest(name):
            key = f"{saga_id}/webhook/1"
            wait_for(lambda k=key: len([r for r in log.snapshot() if r.key == k]) >= 2, 60, key)
            bodies = {r.path: r.body for r in log.snapshot() if r.key == key}
            assert set(bodies) == {"/old", "/latest"}
            assert bodies["/old"] == bodies["/latest"]
            assert b'"Ada"' in bodies["/old"]
        for world in worlds.both():  # the notifier records the delivery after making it
            wait_for(lambda w=world: completed(w, sagas), 30, "the sagas completed")
    finally:
        for service in started:
            service.stop()
    types = [
        [(r["aggregate_id"], r["type"], r["aggregate_version"]) for r in sorted_records(found)]
        for found in (read_topic(w, w.topic("notifications")) for w in worlds.both())
    ]
    assert types[0] == types[1]


def completed(settings: Settings, sagas: set[str]) -> bool:
    found = read_topic(settings, settings.topic("notifications"))
    done = {s.record["aggregate_id"] for s in found if s.record["type"] == "notification.completed"}
    return done >= sagas


def add_webhook_user(settings: Settings, user_id: str, url: str) -> None:
    """A user whose one channel is a webhook to `url`, in the users read model."""
    writer = EventWriter(settings)
    writer.event("user.registered", user_id, {"email": "ada@example.com", "name": "Ada"})
    channels = [{"channel": "webhook", "address": url, "enabled": True}]
    writer.event("user.preferences_set", user_id, {"channels": channels, "quiet_hours": None})
    writer.flush()
    with Projector(settings, projections=("users",)):
        wait_until(all_caught_up(settings, ("users",)), what="the user in the read model")


def write_saga_until(worlds: Worlds, old: SchemaVersion, saga_id: str) -> None:
    """A saga started now, its events up to the first of `old`'s name, that one in `old`."""
    now = int(time.time() * 1000)
    start = StartNotification(
        notification_id=saga_id, user_id="user-1", template="welcome", data=SAGA_DATA,
        requested_at=now, deadline=now + 60_000,
        preferences=(ChannelAddress("webhook", "unused: the notifier asks the read model"),),
    )  # fmt: skip
    partition = partition_for(saga_id.encode(), worlds.old.partitions)
    engine = SagaEngine(RenderedContents(TemplateRenderer()), CircuitConfig(5, 1_000))
    for out in engine.run([Work(saga_id, partition, start)], now).events:
        record = saga_record(out, SAMPLE_TIME)
        if old.name == out.event.TYPE:
            worlds.write("notifications", saga_id, old, record, partition)
            return
        value = worlds.codec.encode(out.event.TYPE, record)
        worlds.write_both("notifications", saga_id, value, partition)
    raise AssertionError(f"a started saga writes no {old.name}")


WIRE_TESTS = {
    "tail": test_tail_prints_an_old_version_as_the_latest,
    "command-processor": test_the_command_processor_decides_old_commands_as_the_latest,
    "projector": test_the_projector_folds_old_events_into_the_latest_rows,
    "notifier": test_the_notifier_delivers_an_old_saga_event_as_the_latest,
    "analytics-worker": test_the_analytics_worker_rolls_up_old_tracked_events_as_the_latest,
}
