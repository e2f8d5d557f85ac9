"""The command processor on a real broker: transactions, state rebuild, dead letters."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import Producer
from topic_reading import Stored, read_topic

from infra.config.settings import Settings
from schemas.codec import AvroCodec
from streams.command_processor import CommandProcessor
from streams.kafka.config import producer_config
from streams.kafka.topics import ensure_topics


class Running:
    def __init__(self, settings: Settings) -> None:
        self.processor = CommandProcessor(settings)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.processor.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)


@pytest.fixture
def topics_ready(settings: Settings) -> Iterator[Settings]:
    ensure_topics(settings)
    yield settings


def send(settings: Settings, commands: list[dict[str, Any]], raw: list[bytes] = ()) -> None:  # type: ignore[assignment]
    codec = AvroCodec()
    producer = Producer(producer_config(settings))
    for record in commands:
        producer.produce(
            settings.topic("commands"),
            codec.encode(record["type"], record),
            key=record["aggregate_id"],
        )
    for payload in raw:
        producer.produce(settings.topic("commands"), payload, key=b"u-1")
    assert producer.flush(10) == 0


def command(
    n: int, type_: str, aggregate_id: str, data: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {
        "command_id": f"c-{n}",
        "type": type_,
        "aggregate_type": "workspace" if "Workspace" in type_ else "user",
        "aggregate_id": aggregate_id,
        "expected_version": None,
        "issued_at": datetime.now(UTC),
        "correlation_id": f"corr-{n}",
        "actor": "test",
        "actor_scopes": ["users:admin", "workspaces:admin"],
        "data": data,
        **extra,
    }


def wait_outcomes(settings: Settings, count: int, timeout: float = 30) -> list[Stored]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outcomes = read_topic(settings, settings.topic("outcomes"))
        if len(outcomes) >= count:
            return outcomes
        time.sleep(0.2)
    raise AssertionError(f"only {len(outcomes)} of {count} outcomes after {timeout}s")


def by_command(outcomes: list[Stored]) -> dict[str, dict[str, Any]]:
    return {o.record["command_id"]: o.record for o in outcomes}


def test_commands_become_events_outcomes_and_positions(topics_ready: Settings) -> None:
    settings = topics_ready
    running = Running(settings)
    try:
        send(
            settings,
            [
                command(1, "CreateWorkspace", "w-1", {"name": "Acme", "owner_id": "u-1"}),
                command(2, "AddWorkspaceMember", "w-1", {"user_id": "u-2", "role": "admin"}),
                command(3, "AddWorkspaceMember", "w-1", {"user_id": "u-2", "role": "admin"}),
                command(4, "RenameWorkspace", "w-1", {"name": "Acme 2"}, expected_version=1),
            ],
        )
        outcomes = by_command(wait_outcomes(settings, 4))
    finally:
        running.close()
    events = [e for e in read_topic(settings, settings.topic("events"))]
    assert [e.record["aggregate_version"] for e in events] == [1, 2, 3]
    assert [e.record["type"] for e in events] == [
        "workspace.created",
        "workspace.member_added",
        "workspace.member_added",
    ]
    assert outcomes["c-1"]["status"] == "accepted" and outcomes["c-1"]["version"] == 2
    assert outcomes["c-2"]["position"] == f"{events[2].partition}-{events[2].offset}"
    assert outcomes["c-3"]["error_code"] == "workspace.member_exists"
    assert (outcomes["c-4"]["error_code"], outcomes["c-4"]["version"]) == ("version_conflict", 3)


def test_a_restarted_processor_rebuilds_state_from_the_events(topics_ready: Settings) -> None:
    settings = topics_ready
    first = Running(settings)
    send(settings, [command(1, "RegisterUser", "u-1", {"email": "a@b.co", "name": "A"})])
    wait_outcomes(settings, 1)
    first.close()
    second = Running(settings)
    try:
        send(
            settings,
            [
                command(2, "RegisterUser", "u-1", {"email": "a@b.co", "name": "A"}),
                command(3, "UpdateUserProfile", "u-1", {"name": "B"}, expected_version=1),
            ],
        )
        outcomes = by_command(wait_outcomes(settings, 3))
    finally:
        second.close()
    assert outcomes["c-2"]["error_code"] == "user.already_registered"
    assert (outcomes["c-3"]["status"], outcomes["c-3"]["version"]) == ("accepted", 2)
    assert len(read_topic(settings, settings.topic("events"))) == 2


def test_an_undecodable_command_is_dead_lettered_and_the_next_one_processed(
    topics_ready: Settings,
) -> None:
    settings = topics_ready
    running = Running(settings)
    try:
        send(settings, [], raw=[b"not avro at all"])
        send(settings, [command(1, "RegisterUser", "u-1", {"email": "a@b.co", "name": "A"})])
        outcomes = by_command(wait_outcomes(settings, 1))
    finally:
        running.close()
    assert outcomes["c-1"]["status"] == "accepted"
    dead = read_topic(settings, settings.topic("deadletter"))
    assert len(dead) == 1
    assert dead[0].record["reason"] == "not_avro"
    assert dead[0].record["payload"] == b"not avro at all"
    assert dead[0].record["source_topic"] == settings.topic("commands")
    assert dead[0].record["consumer"] == "command-processor"
