"""The replicated cluster's configuration: derived from the broker count, alike on every node."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from infra.config.settings import Replication, Settings
from infra.local.kafka_cluster import KafkaCluster, local_kafka

JARS = Path("/nonexistent/jars")


def properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


@pytest.mark.parametrize(
    ("brokers", "factor", "min_insync"), [(1, 1, 1), (2, 2, 1), (3, 3, 2), (5, 3, 2)]
)
def test_replication_follows_the_broker_count(brokers: int, factor: int, min_insync: int) -> None:
    assert Replication.for_brokers(brokers) == Replication(factor, min_insync)
    assert Settings(kafka_brokers=brokers).kafka_replication == Replication(factor, min_insync)


def test_the_bootstrap_lists_every_local_broker() -> None:
    assert Settings().resolved_kafka_bootstrap == "127.0.0.1:9092"
    three = Settings(kafka_brokers=3)
    assert three.kafka_node_ports == [(9092, 9093), (9094, 9095), (9096, 9097)]
    assert three.resolved_kafka_bootstrap == "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
    external = Settings(kafka_brokers=3, kafka_bootstrap="kafka:9092,kafka-2:9092")
    assert external.resolved_kafka_bootstrap == "kafka:9092,kafka-2:9092"


def test_overlapping_broker_ports_are_refused() -> None:
    with pytest.raises(ValidationError, match="overlapping ports"):
        Settings(kafka_brokers=2, kafka_port=9092, kafka_controller_port=9094)


def test_every_node_shares_the_quorum_and_replication(tmp_path: Path) -> None:
    ports = [(10001, 10002), (10003, 10004), (10005, 10006)]
    cluster = KafkaCluster.create(JARS, tmp_path, ports)
    configs = [properties(node.server_properties()) for node in cluster.nodes]

    assert [c["node.id"] for c in configs] == ["1", "2", "3"]
    assert {c["controller.quorum.voters"] for c in configs} == {
        "1@127.0.0.1:10002,2@127.0.0.1:10004,3@127.0.0.1:10006"
    }
    assert [c["listeners"] for c in configs] == [
        f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}"
        for port, controller in ports
    ]
    assert len({c["log.dirs"] for c in configs}) == 3
    for config in configs:
        assert config["default.replication.factor"] == "3"
        assert config["offsets.topic.replication.factor"] == "3"
        assert config["transaction.state.log.replication.factor"] == "3"
        assert config["transaction.state.log.min.isr"] == "2"
        assert config["min.insync.replicas"] == "2"
        assert config["unclean.leader.election.enable"] == "false"
    assert cluster.bootstrap == "127.0.0.1:10001,127.0.0.1:10003,127.0.0.1:10005"


def test_a_single_node_is_a_cluster_of_its_own(tmp_path: Path) -> None:
    (node,) = local_kafka(Settings(home=tmp_path)).nodes
    config = properties(node.server_properties())

    assert config["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert config["offsets.topic.replication.factor"] == "1"
    assert config["min.insync.replicas"] == "1"
    assert (node.data_dir, node.log_file) == (tmp_path / "kafka/data", tmp_path / "logs/kafka.log")
    assert node.supervised


def test_nexus_up_keeps_a_cluster_apart_from_the_single_broker(tmp_path: Path) -> None:
    cluster = local_kafka(Settings(home=tmp_path, kafka_brokers=3))

    assert [node.name for node in cluster.nodes] == ["kafka-1", "kafka-2", "kafka-3"]
    assert [node.data_dir for node in cluster.nodes] == [
        tmp_path / f"kafka/cluster-3/node-{n}" for n in (1, 2, 3)
    ]
    assert [node.log_file for node in cluster.nodes] == [
        tmp_path / f"logs/kafka-{n}.log" for n in (1, 2, 3)
    ]
    assert all(node.supervised for node in cluster.nodes)
    assert (cluster.name, cluster.port) == ("kafka", 9092)
