"""The real servers behind `nexus up` and the test fixtures: Kafka and PostgreSQL."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from infra.local import postgres_server
from infra.local.kafka_server import KafkaServer
from infra.local.postgres_server import PostgresServer
from infra.local.processes import ProcessError, children_of, free_port, is_alive
from infra.local.supervise import supervised_child


def test_kafka_answers_metadata(kafka_bootstrap: str) -> None:
    metadata = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10)

    assert len(metadata.brokers) == 1


def test_postgres_answers_select_1_with_scram_auth(pg_admin_url: str) -> None:
    with psycopg.connect(pg_admin_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)

    wrong = pg_admin_url.replace("@", "x@", 1)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong).close()


def test_postgres_stores_scram_verifiers(
    postgres_server_factory: Callable[[], PostgresServer],
) -> None:
    server = postgres_server_factory()

    with psycopg.connect(server.admin_url) as conn:
        row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = current_user")
        verifier = row.fetchone()

    assert verifier is not None
    assert verifier[0].startswith("SCRAM-SHA-256$")


def test_postgres_start_on_a_running_cluster_is_a_no_op(
    postgres_server_factory: Callable[[], PostgresServer],
) -> None:
    server = postgres_server_factory()
    pid = server.pid()

    server.start()

    assert pid is not None
    assert server.pid() == pid
    with psycopg.connect(server.url()) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("nexus",)


def test_postgres_stop_then_start_keeps_data(
    postgres_server_factory: Callable[[], PostgresServer],
) -> None:
    server = postgres_server_factory()
    with psycopg.connect(server.url()) as conn:
        conn.execute("CREATE TABLE kept (value text)")
        conn.execute("INSERT INTO kept VALUES ('still here')")

    assert server.stop() is True
    assert server.pid() is None
    assert server.stop() is False
    server.start()

    with psycopg.connect(server.url()) as conn:
        assert conn.execute("SELECT value FROM kept").fetchall() == [("still here",)]


@pytest.mark.fault
@pytest.mark.timeout(180)  # its waits: a start of 90 s, back within 30 s
def test_a_sigkilled_postgres_comes_back_by_itself_with_its_data(
    postgres_server_factory: Callable[[], PostgresServer],
) -> None:
    server = postgres_server_factory()
    with psycopg.connect(server.url()) as conn:
        conn.execute("CREATE TABLE kept (value text)")
        conn.execute("INSERT INTO kept VALUES ('committed before the crash')")
    supervisor = server.pid()
    assert supervisor is not None
    postmaster = supervised_child(supervisor)
    assert postmaster is not None and postmaster != supervisor

    os.kill(postmaster, signal.SIGKILL)  # no shutdown: its postmaster.pid stays behind

    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(server.url(), connect_timeout=2) as conn:
                rows = conn.execute("SELECT value FROM kept").fetchall()
            break
        except psycopg.OperationalError:
            assert time.monotonic() < deadline, "PostgreSQL did not come back within 30 s"
            time.sleep(0.2)
    assert rows == [("committed before the crash",)]
    assert server.pid() == supervisor
    assert supervised_child(supervisor) not in (None, postmaster)


def test_postgres_stop_ends_its_supervisor_and_every_server_process(
    postgres_server_factory: Callable[[], PostgresServer],
) -> None:
    server = postgres_server_factory()
    supervisor = server.pid()
    assert supervisor is not None
    postmaster = supervised_child(supervisor)
    assert postmaster is not None
    backends = children_of(postmaster)
    assert backends  # checkpointer, walwriter, ...

    assert server.stop() is True

    assert [pid for pid in (supervisor, postmaster, *backends) if is_alive(pid)] == []
    assert "received fast shutdown request" in server.log_file.read_text()


def test_postgres_explains_a_data_dir_its_os_user_cannot_enter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    monkeypatch.setattr(postgres_server, "_as_root", lambda: True)
    server = PostgresServer(locked / "pg", free_port(), locked / "pw", locked / "pg.log")

    with pytest.raises(ProcessError, match=r"`postgres` OS user, which cannot enter .*"):
        server.start()
    assert not (locked / "pg").exists()


def test_kafka_restart_keeps_a_produced_message(
    kafka_server_factory: Callable[[], KafkaServer],
) -> None:
    server = kafka_server_factory()
    topic = f"restart-{uuid.uuid4().hex}"
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(10)
    producer = Producer({"bootstrap.servers": server.bootstrap, "acks": "all"})
    producer.produce(topic, key=b"k", value=b"survives a restart")
    assert producer.flush(10) == 0

    assert server.stop() is True
    assert server.pid() is None
    server.start()
    server.wait_ready(timeout=60)

    assert _read_one(server.bootstrap, topic) == b"survives a restart"


def _read_one(bootstrap: str, topic: str) -> bytes | None:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": topic, "enable.auto.commit": False}
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        for _ in range(30):
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                value: bytes | None = message.value()
                return value
        return None
    finally:
        consumer.close()
