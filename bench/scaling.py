"""Command throughput of two command processors against one, with CPU per process.

Each configuration gets fresh topics (6 partitions). Its processors (`nexus run
command-processor`, distinct NEXUS_INSTANCE_ID and health port, one consumer group) start,
the group settles with every member holding partitions, and one warm-up command per
partition is decided. Then N RegisterUser commands, pre-encoded, are produced at once and
timed from the first produce until the group's committed offsets (written in the
processors' transactions, with the outcomes) account for every one of them.

Two processors can only be faster if one was short of CPU or of broker round trips; on a
two-core machine that also runs the broker, the ratio may be near 1. CPU seconds per
process are reported beside the rates so that the reason can be read off.
NEXUS_BENCH_SCALING_COMMANDS sets N.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupState, TopicPartition
from confluent_kafka.admin import AdminClient

from bench.cpu import cpu_seconds
from bench.environment import BenchEnvironment
from bench.kafka_log import bulk_producer, produce_all
from bench.processes import Stack, nexus_service
from bench.report import Figure, Outcome, say
from infra.config.settings import Settings
from infra.local.processes import free_port
from infra.local.service_env import with_free_ports
from schemas.codec import AvroCodec
from streams.kafka.config import admin_config, consumer_config
from streams.kafka.partitioning import partition_for
from streams.kafka.topics import ensure_topics

NAME = "scaling"
COMMANDS = int(os.environ.get("NEXUS_BENCH_SCALING_COMMANDS", "30000"))
SETTLE_TIMEOUT = 90.0
DRAIN_TIMEOUT = 600.0
AT = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Measured:
    processors: int
    seconds: float
    cpu: dict[str, float]  # CPU seconds over the timed stretch, by process
    kafka_cpu: float

    @property
    def rate(self) -> float:
        return COMMANDS / self.seconds


def run(env: BenchEnvironment) -> Outcome:
    one, two = measure(env, 1), measure(env, 2)
    figure = Figure(
        "commands decided/s, 2 command processors", "/s", two.rate, one.rate,
        "1 command processor", "report (2 cores)", None,
    )  # fmt: skip
    notes = [
        f"{m.processors} processor(s): {COMMANDS:,} commands in {m.seconds:.1f} s "
        f"({m.rate:,.0f}/s); CPU s {_cpu(m)}; kafka {m.kafka_cpu:.1f} s "
        f"({sum(m.cpu.values()) / COMMANDS * 1e6:,.0f} processor CPU us per command)"
        for m in (one, two)
    ]
    notes.append(f"ratio {two.rate / one.rate:.2f} on {os.cpu_count()} CPUs")
    details = {
        f"processors_{m.processors}": {
            "seconds": m.seconds, "per_second": m.rate, "cpu_s": m.cpu, "kafka_cpu_s": m.kafka_cpu,
        }
        for m in (one, two)
    }  # fmt: skip
    return Outcome(NAME, [figure], notes, {"commands": COMMANDS, **details})


def _cpu(measured: Measured) -> str:
    return ", ".join(f"{name} {seconds:.1f}" for name, seconds in measured.cpu.items())


def measure(env: BenchEnvironment, processors: int) -> Measured:
    settings = with_free_ports(env.settings(f"{NAME}{processors}"))
    ensure_topics(settings)
    children = [
        nexus_service("command-processor", instance(settings, n), f"command-processor-{n + 1}")
        for n in range(processors)
    ]
    say(f"scaling: {processors} command processor(s)")
    with Stack(children):
        wait_settled(settings, processors)
        decide_all(settings, list(warm_up(settings)), settings.partitions)
        kafka_pid = env.kafka.pid() if env.kafka is not None else None
        before = {c.name: tree_cpu_seconds(c.pid) for c in children}
        kafka_before = cpu_seconds(kafka_pid) if kafka_pid else 0.0
        started = time.perf_counter()
        decide_all(settings, commands(COMMANDS), settings.partitions + COMMANDS)
        seconds = time.perf_counter() - started
        cpu = {c.name: tree_cpu_seconds(c.pid) - before[c.name] for c in children}
        kafka_cpu = (cpu_seconds(kafka_pid) if kafka_pid else 0.0) - kafka_before
    return Measured(processors, seconds, cpu, kafka_cpu)


def instance(settings: Settings, n: int) -> Settings:
    """The n-th processor's settings: its own static member id and health port."""
    if n == 0:
        return settings.model_copy(update={"instance_id": "bench-1"})
    return settings.model_copy(
        update={"instance_id": f"bench-{n + 1}", "command_processor_health_port": free_port()}
    )


def wait_settled(settings: Settings, members: int) -> None:
    """Until the group is stable with `members` members, each holding partitions."""
    admin = AdminClient(admin_config(settings))
    group = f"{settings.topic_prefix}.command-processor"
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        [future] = admin.describe_consumer_groups([group], request_timeout=10).values()
        found = future.result()
        held = [len(m.assignment.topic_partitions) for m in found.members]
        if found.state == ConsumerGroupState.STABLE and len(held) == members and all(held):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"group {group} not settled: {found.state}, partitions {held}")
        time.sleep(0.2)


def warm_up(settings: Settings) -> Iterator[tuple[str, bytes]]:
    """One command for each partition, so that every writer has opened."""
    for partition in range(settings.partitions):
        n = 0
        while partition_for(f"warm-{partition}-{n}".encode(), settings.partitions) != partition:
            n += 1
        yield next(_encoded([f"warm-{partition}-{n}"]))


def commands(count: int) -> Iterator[tuple[str, bytes]]:
    return _encoded(f"user-{n:07d}" for n in range(count))


def _encoded(users: Iterator[str] | list[str]) -> Iterator[tuple[str, bytes]]:
    codec = AvroCodec()
    for user in users:
        yield user, codec.encode("RegisterUser", _register(user), check=False)


def _register(user: str) -> dict[str, Any]:
    return {
        "command_id": f"register-{user}", "type": "RegisterUser", "aggregate_type": "user",
        "aggregate_id": user, "expected_version": None, "issued_at": AT,
        "correlation_id": user, "actor": user, "actor_scopes": [],
        "data": {"email": f"{user}@example.com", "name": user, "locale": None},
    }  # fmt: skip


def decide_all(
    settings: Settings, messages: Iterator[tuple[str, bytes]] | list[tuple[str, bytes]], total: int
) -> None:
    """Produce `messages` as commands; return once the group has committed `total` in all."""
    produce_all(bulk_producer(settings), settings.topic("commands"), messages)
    group = f"{settings.topic_prefix}.command-processor"
    topic = settings.topic("commands")
    reader = Consumer(consumer_config(settings, group))  # never subscribes: only reads offsets
    wanted = [TopicPartition(topic, p) for p in range(settings.partitions)]
    deadline = time.monotonic() + DRAIN_TIMEOUT
    try:
        while sum(max(tp.offset, 0) for tp in reader.committed(wanted, 10)) < total:
            if time.monotonic() > deadline:
                raise RuntimeError(f"commands not all decided after {DRAIN_TIMEOUT:.0f} s")
            time.sleep(0.05)
    finally:
        reader.close()


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of `pid` and its descendants (a service may run under a supervisor)."""
    total = cpu_seconds(pid)
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        total += sum(tree_cpu_seconds(int(child)) for child in children)
    return total
