"""A supervised broker heals by itself: its JVM SIGKILLed, the supervisor starts it again, and
every message acknowledged before or after is there exactly once, in order."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from conftest import KafkaClusterFactory

from infra.local.kafka_server import KafkaServer
from infra.local.processes import is_alive

MESSAGES = 500
RESTART_BOUND_S = 60.0


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    for value in values:
        producer.produce(topic, value, key=b"k")
    assert producer.flush(30) == 0, "a message was not acknowledged"


def read_all(bootstrap: str, topic: str) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4().hex}"})
    try:
        _, end = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, 0)])
        values: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(values) < end and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                values.append(message.value())
        return values
    finally:
        consumer.close()


def wait_for_new_jvm(broker: KafkaServer, killed: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jvm = broker.broker_pid()
        if jvm is not None and jvm != killed:
            return jvm
        time.sleep(0.1)
    raise AssertionError(f"no new broker JVM {timeout}s after killing {killed}")


@pytest.mark.fault
@pytest.mark.timeout(300)  # its waits: the broker started (120 s), back within 60 s
def test_a_sigkilled_broker_comes_back_with_every_acknowledged_message(
    kafka_cluster_factory: KafkaClusterFactory,
) -> None:
    cluster = kafka_cluster_factory(1, supervised=True)
    (broker,) = cluster.nodes
    topic = f"heal-{uuid.uuid4().hex}"
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(10)
    before = [f"before-{i}".encode() for i in range(MESSAGES)]
    produce(cluster.bootstrap, topic, before)
    supervisor, jvm = broker.pid(), broker.broker_pid()
    assert supervisor is not None and jvm is not None and jvm != supervisor

    os.kill(jvm, signal.SIGKILL)
    killed_at = time.monotonic()
    new_jvm = wait_for_new_jvm(broker, jvm, RESTART_BOUND_S)
    cluster.wait_ready(timeout=RESTART_BOUND_S - (time.monotonic() - killed_at))
    restart_s = time.monotonic() - killed_at
    print(f"\nbroker answered metadata {restart_s:.1f}s after SIGKILL (new JVM {new_jvm})")

    assert restart_s < RESTART_BOUND_S
    assert not is_alive(jvm)
    assert broker.pid() == supervisor, "the supervisor itself must stay"
    after = [f"after-{i}".encode() for i in range(MESSAGES)]
    produce(cluster.bootstrap, topic, after)
    assert read_all(cluster.bootstrap, topic) == before + after


def test_stopping_a_supervised_broker_stops_its_jvm(
    kafka_cluster_factory: KafkaClusterFactory,
) -> None:
    cluster = kafka_cluster_factory(1, supervised=True)
    (broker,) = cluster.nodes
    supervisor, jvm = broker.pid(), broker.broker_pid()
    assert supervisor is not None and jvm is not None

    assert cluster.stop(timeout=30) is True

    assert (is_alive(supervisor), is_alive(jvm)) == (False, False)
    assert (cluster.pid(), broker.broker_pid()) == (None, None)


def test_a_broker_started_before_supervision_is_found_and_stopped(tmp_path: Path) -> None:
    """An older `nexus up` ran the JVM bare: the supervised node must neither start a second
    one on its port nor lose track of it."""
    bare = KafkaServer(tmp_path / "jars", tmp_path, 1, 2, tmp_path / "kafka.log")
    supervised = KafkaServer(
        tmp_path / "jars", tmp_path, 1, 2, tmp_path / "kafka.log", supervised=True
    )
    # A stand-in for the old JVM: its command line ends as the broker's does.
    java_args = bare.jvm_argv()[1:]
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *java_args])
    (tmp_path / "kafka.pid").write_text(f"{stand_in.pid}\n")
    try:
        assert (supervised.pid(), supervised.broker_pid()) == (stand_in.pid, stand_in.pid)
        supervised.start()  # already running: a no-op
        assert (tmp_path / "kafka.pid").read_text() == f"{stand_in.pid}\n"

        assert supervised.stop(timeout=10) is True
        assert (is_alive(stand_in.pid), supervised.pid()) == (False, None)
    finally:
        stand_in.kill()
