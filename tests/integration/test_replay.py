"""Replay on real Kafka and PostgreSQL: a rebuilt version equals the live one row for row,
for every view of every projection in the catalog, and swapping it in never interrupts the
live projection or its readers."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from test_projection_support import (
    VIEWS,
    EventWriter,
    all_caught_up,
    dump_views,
    populate,
    populate_stream_views,
    wait_until,
)

from infra.config.settings import Settings
from projections.catalog import PROJECTIONS, UnknownProjection
from projections.migrations import migrate
from projections.projector import Projector
from projections.replay import ReplayConflict, replay, replay_projection
from projections.versions import versions_present
from schemas.codec import AvroCodec
from streams.kafka.topics import ensure_topics

COUNTS = "SELECT " + ", ".join(f"(SELECT count(*) FROM public.{view})" for view in VIEWS)
# The live side here keeps every projection with the projector's runners, the stream-processed
# ones included (in production the analytics worker applies them with the same BatchApplier).
EVERY_PROJECTION = tuple(PROJECTIONS)


class ViewReader(threading.Thread):
    """Reads the views in a loop, as the gateway would, keeping every row count it saw."""

    def __init__(self, database_url: str) -> None:
        super().__init__(daemon=True)
        self.database_url, self.stopping = database_url, threading.Event()
        self.samples: list[tuple[int, ...]] = []
        self.errors: list[Exception] = []

    def run(self) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            while not self.stopping.is_set():
                try:
                    self.samples.append(tuple(conn.execute(COUNTS).fetchone() or ()))
                except psycopg.Error as exc:
                    self.errors.append(exc)
                time.sleep(0.005)


def produce_slowly(writer: EventWriter) -> None:
    """New users and workspaces, plus updates of existing users, while a replay runs."""
    for chunk in range(10):
        populate(writer, f"b{chunk}", users=8, workspaces=2)
        for n in range(10):
            writer.event(
                "user.profile_updated", f"a-u{n:04d}", {"name": f"b{chunk}", "email": None}
            )
        writer.flush()
        time.sleep(0.03)


@pytest.fixture
def second_database(pg_admin_url: str, settings: Settings) -> Iterator[str]:
    """Another empty database on the same server, for a second projector on the same topics."""
    name = f"t2_{uuid.uuid4().hex}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield settings.resolved_database_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_replay_equals_live_while_live_keeps_serving(
    settings: Settings, second_database: str
) -> None:
    ensure_topics(settings)
    writer = EventWriter(settings)
    populate(writer, "a", users=400, workspaces=100)
    populate_stream_views(writer, "a", count=60)
    writer.flush()
    url = settings.resolved_database_url
    with Projector(settings, projections=EVERY_PROJECTION):
        wait_until(all_caught_up(settings, EVERY_PROJECTION), what="live projections")
        before = dump_views(url)
        reader, producer = ViewReader(url), threading.Thread(target=produce_slowly, args=(writer,))
        reader.start()
        producer.start()
        result = replay(settings, "all", progress=False)
        producer.join()
        # For the live runners on the new versions:
        populate(writer, "c", users=20, workspaces=5)
        populate_stream_views(writer, "c", count=6)
        writer.flush()
        caught_up = all_caught_up(settings, EVERY_PROJECTION)
        wait_until(caught_up, what="live projections after the swap")
        reader.stopping.set()
        reader.join()
        replayed = dump_views(url)
    assert [(p.name, p.old_version, p.new_version) for p in result.parts] == [
        (name, 1, 2) for name in PROJECTIONS
    ]
    assert all(p.events >= len(before.get(p.name, ())) for p in result.parts)
    assert_views_served_throughout(reader, before)
    assert_only_live_schemas(url, version=2)
    assert_equals_incremental_projection(settings, second_database, replayed)


def assert_views_served_throughout(reader: ViewReader, before: dict[str, list[tuple]]) -> None:
    assert reader.errors == []
    assert len(reader.samples) > 10
    floor = [len(before[view]) for view in VIEWS]
    for sample in reader.samples:  # view by view: a tuple compares only up to its first difference
        lost = [v for v, n, least in zip(VIEWS, sample, floor, strict=True) if n < least]
        assert lost == [], f"{lost} lost rows during the replay"


def assert_only_live_schemas(database_url: str, version: int) -> None:
    with psycopg.connect(database_url) as conn:
        schemas = conn.execute(
            "SELECT schema_name FROM information_schema.schemata"
            " WHERE schema_name LIKE 'proj%' ORDER BY 1"
        ).fetchall()
    assert schemas == [(f"proj_{name}_v{version}",) for name in sorted(PROJECTIONS)]


def assert_equals_incremental_projection(
    settings: Settings, database_url: str, replayed: dict[str, list[tuple]]
) -> None:
    """A projector that applies the same topics in small batches builds the same rows, in
    every view of the catalog."""
    other = settings.model_copy(update={"database_url": database_url})
    with Projector(other, projections=EVERY_PROJECTION, batch_size=7):
        caught_up = all_caught_up(settings, EVERY_PROJECTION, url=database_url)
        wait_until(caught_up, what="incremental projections")
    incremental = dump_views(database_url)
    assert sorted(replayed) == sorted(incremental) == sorted(VIEWS)
    for view, rows in replayed.items():
        assert len(rows) > 0
        assert rows == incremental[view], view


def test_replay_bumps_the_version_each_time_and_refuses_to_race(
    settings: Settings, capfd: pytest.CaptureFixture[str]
) -> None:
    ensure_topics(settings)
    writer = EventWriter(settings)
    populate(writer, "a", users=50, workspaces=5)
    writer.flush()
    migrate(settings.resolved_database_url)
    with psycopg.connect(settings.resolved_database_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA proj_users_v9")  # as an interrupted replay would leave it
    first = replay(settings, "users")
    assert "replay users" in capfd.readouterr().err
    second = replay(settings, "users", progress=False)
    assert (first.old_version, first.new_version, second.new_version) == (1, 2, 3)
    assert first.events == second.events > 50
    with psycopg.connect(settings.resolved_database_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM public.users").fetchone() == (50,)
        assert versions_present(conn, "users") == [3]
        conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (0x6E78, "users"))
        with pytest.raises(ReplayConflict):
            replay(settings, "users", progress=False)
    with pytest.raises(UnknownProjection):
        replay(settings, "nope", progress=False)


def test_a_fill_that_writes_and_lets_go_of_rows_as_it_goes_builds_the_same_rows(
    settings: Settings,
) -> None:
    ensure_topics(settings)
    writer = EventWriter(settings)
    populate(writer, "a", users=40, workspaces=10)
    populate_stream_views(writer, "a", count=12)
    produce_slowly(writer)  # updates of rows written before
    migrate(settings.resolved_database_url)
    codec, url = AvroCodec(), settings.resolved_database_url
    for target in PROJECTIONS.values():
        replay_projection(settings, target, codec=codec, progress=False)
    in_one_write = dump_views(url)
    for target in PROJECTIONS.values():  # rows held: a few at a time, read back when let go
        replay_projection(
            settings, target, codec=codec, progress=False, batch_size=7, memory_rows=5
        )
    assert dump_views(url) == in_one_write
    assert all(in_one_write[view] for view in VIEWS)
