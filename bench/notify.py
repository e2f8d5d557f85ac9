"""Figures 5-7: notifications end to end, saga overhead, and request->delivery latency.

A local webhook sink (bench/webhook_sink.py, its own process) receives every send. First
the reference: apprise's json:// notifying the sink in a plain loop, and over as many
threads as the notifier sends on. Then command processor, projector, gateway and notifier
start; users with a webhook channel to the sink are created through the gateway. The peak:
N requests pre-encoded, produced at once, timed from the first produce to the sink's
arrival of the last distinct notification. The notifier's CPU over that burst (until
every saga finished) gives the saga's cost per notification, and reading the saga topic
gives the events written per notification. Last, requests are produced at half the peak
for a fixed time and each is timed from its produce to its arrival at the sink.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
from confluent_kafka import Consumer
from prometheus_client.parser import text_string_to_metric_families

from bench.cpu import cpu_seconds
from bench.environment import BenchEnvironment
from bench.notify_analysis import Burst, Paced, outcome
from bench.notify_load import (
    build_requests,
    create_users,
    produce_burst,
    produce_paced,
    wait_delivered,
)
from bench.notify_pipeline import pipeline, step_totals
from bench.notify_reference import apprise_run
from bench.processes import Stack, gateway_token, nexus_service
from bench.report import Outcome, say
from bench.webhook_sink import SinkReceipts, sink_process
from infra.config.scale import ServiceName
from infra.config.settings import Settings
from infra.local.child_process import ChildProcess
from infra.local.processes import free_port
from infra.local.service_env import service_port, with_free_ports
from projections.migrations import migrate
from schemas.codec import AvroCodec
from streams.kafka.config import consumer_config
from streams.kafka.reading import read_to_end
from streams.kafka.topics import ensure_topics

NAME = "notify"
SERVICES: tuple[ServiceName, ...] = ("command-processor", "projector", "gateway", "notifier")
USERS = 20
WARMUP = 300
NOTIFICATIONS = 10_000
REFERENCE_SENDS = 4_000
LOAD_SHARE = 0.5
PACED_SECONDS = 15
DRAIN_TIMEOUT = 150.0
TAIL_TIMEOUT = 30.0
FINISHED = "nexus_notification_sagas_finished"


class StackCpu:
    """CPU seconds each process used since `start()`; PostgreSQL counts its backends too."""

    def __init__(self, pids: dict[str, int | None], with_children: frozenset[str]) -> None:
        self.pids = {name: pid for name, pid in pids.items() if pid is not None}
        self.with_children = with_children
        self._start: dict[str, float] = {}
        self._started = 0.0

    def start(self) -> StackCpu:
        self._start, self._started = self._now(), time.monotonic()
        return self

    def used(self) -> tuple[dict[str, float], float]:
        """(CPU seconds per process, wall seconds) since `start()`."""
        now = self._now()
        return {n: now[n] - self._start[n] for n in now}, time.monotonic() - self._started

    def _now(self) -> dict[str, float]:
        return {
            name: tree_cpu_seconds(pid) if name in self.with_children else cpu_seconds(pid)
            for name, pid in self.pids.items()
        }


def tree_cpu_seconds(pid: int) -> float:
    """CPU of `pid`, its reaped children (cutime, cstime) and its live descendants: the
    PostgreSQL pid is its supervisor's, whose child is the postmaster, and the backends
    that do the work are the postmaster's children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    own = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return own + sum(tree_cpu_seconds(child) for child in children(pid))


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return found


def sagas_finished(notifier: ChildProcess) -> float:
    """The notifier's count of sagas that reached a terminal status, all statuses added up."""
    text = httpx.get(f"{notifier.url}/metrics", timeout=5.0).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == FINISHED
        for sample in family.samples
        if sample.name == f"{FINISHED}_total"
    )


def wait_finished(notifier: ChildProcess, count: float, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while sagas_finished(notifier) < count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def saga_event_types(settings: Settings, ids: list[str]) -> Counter[str]:
    """Saga events of these notifications in the notifications topic (committed), by type."""
    wanted, codec, types = {i.encode() for i in ids}, AvroCodec(), Counter[str]()
    topic = settings.topic("notifications")
    group = f"{settings.topic_prefix}.bench-read-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(consumer_config(settings, group))
    try:
        for partition in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
            for message in read_to_end(consumer, topic, partition):
                if message.key() in wanted:
                    types[codec.decode(message.value())[1]["type"]] += 1
    finally:
        consumer.close()
    return types


def warm_up(settings: Settings, sink: SinkReceipts, users: list[str]) -> None:
    """Connections, pools and caches of every process used once before anything is timed."""
    requests = build_requests(users, WARMUP, "warmup")
    produce_burst(settings, requests)
    if len(wait_delivered(sink, requests.ids, 60).first) < WARMUP:
        raise RuntimeError("warm-up notifications did not all arrive within 60 s")


def burst(
    settings: Settings, sink: SinkReceipts, users: list[str], notifier: ChildProcess, cpu: StackCpu
) -> Burst:
    requests = build_requests(users, NOTIFICATIONS, "burst")
    finished_before, steps_before = sagas_finished(notifier), step_totals(notifier)
    cpu.start()
    started, produced = produce_burst(settings, requests)
    deliveries = wait_delivered(sink, requests.ids, DRAIN_TIMEOUT)
    finished = wait_finished(notifier, finished_before + NOTIFICATIONS, TAIL_TIMEOUT)
    used, elapsed = cpu.used()
    return Burst(
        NOTIFICATIONS, started, produced, deliveries, finished, used, elapsed,
        saga_event_types(settings, requests.ids),
        pipeline(settings.resolved_database_url, requests.ids, steps_before, notifier),
    )  # fmt: skip


def paced(
    settings: Settings,
    sink: SinkReceipts,
    users: list[str],
    rate: float,
    notifier: ChildProcess,
    cpu: StackCpu,
) -> Paced:
    requests = build_requests(users, int(rate * PACED_SECONDS), "paced")
    steps_before = step_totals(notifier)
    cpu.start()
    sends = produce_paced(settings, requests, rate)
    used, elapsed = cpu.used()
    deliveries = wait_delivered(sink, requests.ids, TAIL_TIMEOUT)
    latency_ms = [
        (deliveries.first[i] - sent) * 1000
        for i, sent in zip(requests.ids, sends.sent_at, strict=True)
        if i in deliveries.first
    ]
    stages = pipeline(settings.resolved_database_url, requests.ids, steps_before, notifier)
    return Paced(sends, len(requests.ids), deliveries, latency_ms, used, elapsed, stages)


def stack_cpu(env: BenchEnvironment, sink: ChildProcess, services: list[ChildProcess]) -> StackCpu:
    assert env.kafka is not None and env.postgres is not None
    pids: dict[str, int | None] = {s.name: s.pid for s in services}
    pids |= {"kafka": env.kafka.pid(), "postgres": env.postgres.pid(), sink.name: sink.pid}
    return StackCpu(pids | {"bench client": os.getpid()}, frozenset({"postgres"}))


def run(env: BenchEnvironment) -> Outcome:
    settings = with_free_ports(env.settings(NAME))
    taken = {service_port(settings, name) for name in SERVICES}
    sink_port = next(port for port in iter(free_port, None) if port not in taken)
    settings = settings.model_copy(update={"delivery_allow_list": f"127.0.0.1:{sink_port}"})
    ensure_topics(settings)
    migrate(settings.resolved_database_url)
    threads = settings.delivery_concurrency
    sink = sink_process(sink_port, settings.home / "webhook-sink.log")
    services = [nexus_service(name, settings) for name in SERVICES]
    with Stack([sink]), SinkReceipts(sink.url) as receipts:
        say(f"{NAME}: reference, apprise json:// x {REFERENCE_SENDS:,}, 1 and {threads} threads")
        references = [apprise_run(receipts, sink_port, REFERENCE_SENDS, n) for n in (1, threads)]
        with Stack(services):
            users = create_users(settings, gateway_token(settings), f"{sink.url}/nexus", USERS)
            warm_up(settings, receipts, users)
            cpu = stack_cpu(env, sink, services)
            say(f"{NAME}: {NOTIFICATIONS:,} notifications at once")
            peak = burst(settings, receipts, users, services[-1], cpu)
            if not peak.delivered:
                raise RuntimeError(f"none of {NOTIFICATIONS:,} notifications reached the sink")
            rate = peak.rate * LOAD_SHARE
            say(f"{NAME}: peak {peak.rate:,.0f}/s; pacing at {rate:,.0f}/s for {PACED_SECONDS} s")
            steady = paced(settings, receipts, users, rate, services[-1], cpu)
    return outcome(NAME, references, peak, steady)
