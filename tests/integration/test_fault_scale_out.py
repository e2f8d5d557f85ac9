"""Fault test, scaled out: test_fault_kill's 5,000 commands over 250 aggregates, through two
instances of each service, one instance of each SIGKILLed mid-stream and left dead.

- Two command processors in one consumer group (static members with distinct instance ids)
  hold three commands partitions each; one is killed, and the survivor takes over all six.
- Two projectors: the first keeps every projection (advisory locks), the second stands by
  and applies nothing; the keeper is killed, and the standby takes over from the checkpoints.
- Two gateways serve one port (SO_REUSEPORT), the load spread over both; one is stopped for
  a second (SIGSTOP, so that requests are surely under way on it), then killed: those
  requests fail, and the other gateway answers all the rest.

A request whose gateway died under it got no answer: it is not acknowledged, and it is sent
again as a new command, like a 503. It may have been stored all the same (its gateway died
after producing it), so it may be decided too. Each attempt carries an X-Correlation-Id of
its own, so every stored command is traced to its attempt. Afterwards, exactly: every
202-answered command is decided, no command is decided twice, the first stored attempt of
every step is accepted, the events are exactly those the accepted outcomes name (none
duplicated, versions contiguous), the projections equal a fold of the events topic, and the
survivors did the work.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import pytest
from confluent_kafka.admin import AdminClient
from deadline import Deadline
from fault_http import NO_ANSWER, FaultClient, fault_client
from stack import NEXUS, prepared
from test_fault_kill import (
    CONCURRENCY,
    SCOPES,
    TOTAL,
    USERS,
    WORKSPACES,
    Load,
    fold,
    read_models,
    user_commands,
    wait_for,
    workspace_commands,
)
from test_gateway_instances import listeners
from topic_reading import read_topic

from infra.config.scale import SERVICE_PORT_FIELDS, ServiceName
from infra.config.settings import Settings
from infra.local.child_process import ChildProcess, answers
from infra.local.processes import free_ports
from infra.local.service_env import environment
from streams.kafka.config import admin_config

KEPT = ("users", "workspaces", "memberships")  # the projections this load feeds
ACCEPTED_202 = (
    r'nexus_http_requests_total\{method="(?:POST|PATCH)",route="[^"]+",status="202"\} (\S+)'
)
Step = tuple[str, int]  # (aggregate id, index of the command in its plan)
BUDGET_S = 480  # every wait of the test together (deadline.py)


def instance(service: ServiceName, settings: Settings, n: int, port: int) -> ChildProcess:
    """Instance `n` of `service` (`nexus run SERVICE`, unsupervised: a killed one stays
    dead), with an instance id of its own and its own health port; a gateway serves the
    shared NEXUS_GATEWAY_PORT as well as `port`."""
    field = "gateway_instance_port" if service == "gateway" else SERVICE_PORT_FIELDS[service]
    mine = settings.model_copy(update={field: port, "instance_id": f"{service}-{n}"})
    name = f"{service}-{n}"
    argv = [NEXUS, "run", service]
    return ChildProcess(name, argv, port, settings.home / f"{name}.log", environment(mine))


def metric_sum(process: ChildProcess, pattern: str) -> int:
    found = re.findall(pattern, httpx.get(f"{process.url}/metrics", timeout=5).text)
    return sum(int(float(value)) for value in found)


def applied(projector: ChildProcess, projection: str) -> int:
    pattern = rf'nexus_projection_events_applied_total{{projection="{projection}"}} (\S+)'
    return metric_sum(projector, pattern)


def group_assignment(settings: Settings) -> dict[str, set[int]]:
    """The command processors' group: {static member id: commands partitions assigned}."""
    group = f"{settings.topic_prefix}.command-processor"
    admin = AdminClient(admin_config(settings))
    [future] = admin.describe_consumer_groups([group]).values()
    return {
        member.group_instance_id: {tp.partition for tp in member.assignment.topic_partitions}
        for member in future.result(timeout=10).members
    }


def member(settings: Settings, process: ChildProcess) -> str:
    return f"{settings.topic_prefix}.command-processor.{process.name}"


class ScaledLoad(Load):
    """test_fault_kill's load, where a request may also go unanswered (its gateway died)."""

    def __init__(self, http: FaultClient) -> None:
        super().__init__(http)
        self.attempts: dict[str, Step] = {}  # correlation id -> its step, every attempt
        self.acknowledged: dict[str, str] = {}  # correlation id -> command id, 202s
        self.gateway_killed = False
        self.after_gateway_kill = 0  # 202s to requests sent after it was killed

    async def drive_plan(
        self, aggregate: str, steps: list[tuple[str, str, dict[str, Any]]], gate: asyncio.Semaphore
    ) -> None:
        for index, (method, path, body) in enumerate(steps):  # in order, as test_fault_kill
            async with gate:
                await self._send(aggregate, index, method, path, body)

    async def _send(
        self, aggregate: str, index: int, method: str, path: str, body: dict[str, Any]
    ) -> None:
        sent_after_kill = False

        def attempt(number: int) -> dict[str, str]:  # each attempt traced on its own
            nonlocal sent_after_kill
            correlation = f"{aggregate}.{index}.{number}"
            self.attempts[correlation] = (aggregate, index)
            sent_after_kill = self.gateway_killed
            return {"X-Correlation-Id": correlation}

        response = await self.http.send(method, path, json=body, headers=attempt)
        assert response is not None and response.status_code == 202, response
        command_id = response.json()["command_id"]
        self.accepted.append(command_id)
        self.acknowledged[response.request.headers["X-Correlation-Id"]] = command_id
        self.after_gateway_kill += sent_after_kill


class Stack:
    """Two instances of each service; `kill_*` kill one of each mid-stream (in a thread,
    while the load goes on) and note what they saw."""

    def __init__(self, settings: Settings, ports: list[int]) -> None:
        self.settings = settings
        services: tuple[ServiceName, ...] = ("command-processor", "projector", "gateway")
        self.instances = {
            service: [instance(service, settings, n, ports.pop()) for n in (1, 2)]
            for service in services
        }
        self.killed: dict[ServiceName, ChildProcess] = {}
        self.seen: dict[str, Any] = {}

    @property
    def all(self) -> list[ChildProcess]:
        return [process for pair in self.instances.values() for process in pair]

    def survivor(self, service: ServiceName) -> ChildProcess:
        [alive] = [p for p in self.instances[service] if p is not self.killed.get(service)]
        return alive

    def start(self, deadline: Deadline) -> None:
        processors, projectors, gateways = self.instances.values()
        for processor in processors:
            processor.start(deadline.left(120, f"{processor.name} to start"))
        # The first takes every projection's lock; a standby is alive but not ready.
        projectors[0].start(deadline.left(120, "the first projector to start"))
        projectors[1].start(deadline.left(120, "the standby to start"), probe="/healthz")
        for gateway in gateways:
            gateway.start(deadline.left(120, f"{gateway.name} to start"))  # on its own port
        members = {member(self.settings, p) for p in processors}
        wait_for(
            lambda: (found := group_assignment(self.settings)).keys() == members
            and sorted(map(len, found.values())) == [3, 3]
            and set[int]().union(*found.values()) == set(range(self.settings.partitions)),
            deadline.left(60, "the processors' assignment"),
            "each command processor holding three partitions",
        )
        assert listeners(self.settings.gateway_port) == 2

    def kill_processor(self, load: ScaledLoad) -> None:
        victim, survivor = self.instances["command-processor"]
        found = group_assignment(self.settings)
        assert sorted(map(len, found.values())) == [3, 3], f"not spread over both: {found}"
        victim.kill()
        self.killed["command-processor"] = victim
        killed = time.monotonic()
        alone = {member(self.settings, survivor): set(range(self.settings.partitions))}
        wait_for(lambda: group_assignment(self.settings) == alone, 60, "the survivor alone")
        self.seen["processor takeover s"] = round(time.monotonic() - killed, 1)

    def kill_projector(self, load: ScaledLoad) -> None:
        ready = [p for p in self.instances["projector"] if answers(f"{p.url}/readyz")]
        assert len(ready) == 1, "not one keeper and one standby"
        [keeper] = ready
        [standby] = [p for p in self.instances["projector"] if p is not keeper]
        assert [applied(keeper, name) > 0 for name in KEPT] == [True] * len(KEPT)
        assert [applied(standby, name) for name in KEPT] == [0] * len(KEPT), "standby applied"
        keeper.kill()
        self.killed["projector"] = keeper
        killed = time.monotonic()
        wait_for(lambda: answers(f"{standby.url}/readyz"), 60, "the standby taking over")
        self.seen["projector takeover s"] = round(time.monotonic() - killed, 1)

    def kill_gateway(self, load: ScaledLoad) -> None:
        victim, survivor = self.instances["gateway"]
        answered = [metric_sum(g, ACCEPTED_202) for g in (victim, survivor)]
        assert min(answered) > 0, f"one gateway answered every 202: {answered}"
        self.seen["gateway 202s before its kill"] = answered
        # Stopped first for a moment, so that requests are surely under way on it when it
        # dies (they go unanswered); its answers are too quick to count on catching some.
        os.kill(victim.pid, signal.SIGSTOP)
        time.sleep(1.0)
        victim.kill()  # returns once it is gone: later requests can only reach the survivor
        self.killed["gateway"] = victim
        load.gateway_killed = True
        assert listeners(self.settings.gateway_port) == 1

    def stop(self) -> None:
        for process in reversed(self.all):
            process.stop()


async def send_all(
    stack: Stack, kills: Sequence[tuple[int, Callable[[ScaledLoad], None]]]
) -> ScaledLoad:
    # A request under way on the killed gateway gets no answer; nothing else may fail.
    allowed = {NO_ANSWER}
    async with fault_client(stack.settings, SCOPES, allowed, connections=CONCURRENCY) as http:
        load = ScaledLoad(http)
        gate = asyncio.Semaphore(CONCURRENCY)
        plans = [(f"u{i}", user_commands(i)) for i in range(USERS)] + [
            (f"w{i}", workspace_commands(i)) for i in range(WORKSPACES)
        ]
        async with asyncio.TaskGroup() as senders:
            for aggregate, steps in plans:
                senders.create_task(load.drive_plan(aggregate, steps, gate))
            for threshold, kill in kills:
                while len(load.accepted) < threshold:
                    await asyncio.sleep(0.05)
                await asyncio.to_thread(kill, load)
    return load


def attempt_number(correlation: str) -> int:
    return int(correlation.rsplit(".", 1)[1])


@pytest.mark.fault
@pytest.mark.timeout(BUDGET_S + 100)  # and the instances stopped, the topics read
def test_two_of_each_service_with_one_of_each_sigkilled_mid_stream(settings: Settings) -> None:
    deadline = Deadline(BUDGET_S)
    ports = free_ports(7)
    stack = Stack(prepared(settings, gateway_port=ports.pop()), ports)
    settings = stack.settings
    try:
        stack.start(deadline)
        began = time.monotonic()
        kills = [
            (TOTAL // 4, stack.kill_processor),
            (TOTAL // 2, stack.kill_projector),
            (3 * TOTAL // 4, stack.kill_gateway),
        ]
        load = deadline.run(send_all(stack, kills), 300, f"{TOTAL} commands sent")
        stack.seen["sending s"] = round(time.monotonic() - began, 1)

        # One of each was killed and stayed dead (unsupervised); the other of each lives.
        assert sorted(stack.killed) == ["command-processor", "gateway", "projector"]
        assert {p.name: p.alive() for p in stack.all} == {
            p.name: p not in stack.killed.values() for p in stack.all
        }
        assert len(load.acknowledged) == TOTAL == len(set(load.accepted)) == len(load.accepted)

        # Every stored command is one attempt of ours, each attempt stored at most once,
        # every 202-answered one among them.
        commands = read_topic(settings, settings.topic("commands"))
        stored = {c.record["correlation_id"]: c.record["command_id"] for c in commands}
        assert len(stored) == len(commands), "an attempt stored twice"
        assert set(stored) <= set(load.attempts), "a command nobody sent"
        assert {c: stored.get(c) for c in load.acknowledged} == load.acknowledged, "202 lost"
        unanswered = set(stored) - set(load.acknowledged)
        assert load.failures[NO_ANSWER] > 0, "no request was under way on the killed gateway"
        assert len(unanswered) <= load.failures[NO_ANSWER]

        outcomes = wait_for(
            lambda: (o := read_topic(settings, settings.topic("outcomes")))
            and len(o) >= len(commands)
            and o,
            deadline.left(180, "every outcome"),
            "every outcome",
        )
        decided = Counter(o.record["command_id"] for o in outcomes)
        assert set(decided) == set(stored.values()), "a stored command was not decided"
        assert max(decided.values()) == 1, "a command was decided twice"
        by_command = {o.record["command_id"]: o.record for o in outcomes}
        assert {c: by_command[i]["correlation_id"] for c, i in stored.items()} == {
            c: c for c in stored
        }

        # Each step of the plans took effect once, in order: its first stored attempt was
        # accepted; a later one (a retry of an unanswered one that was stored) did whatever
        # the aggregate makes of a repeat.
        first: dict[Step, str] = {}
        for correlation in sorted(stored, key=attempt_number):
            first.setdefault(load.attempts[correlation], correlation)
        assert len(first) == TOTAL
        firsts = [by_command[stored[c]] for c in first.values()]
        assert {o["status"] for o in firsts} == {"accepted"}
        repeats = Counter(
            (by_command[stored[c]]["command_type"], by_command[stored[c]]["status"])
            for c in set(stored) - set(first.values())
        )

        # The events are exactly those the accepted outcomes name: none lost, none twice.
        events = read_topic(settings, settings.topic("events"))
        named = [
            e for o in outcomes if o.record["status"] == "accepted" for e in o.record["event_ids"]
        ]
        assert sorted(e.record["event_id"] for e in events) == sorted(named)
        assert len(set(named)) == len(named), "duplicated event"
        assert sum(len(o["event_ids"]) for o in firsts) == TOTAL + WORKSPACES  # + the owners
        versions: dict[str, list[int]] = defaultdict(list)
        for event in events:
            versions[event.record["aggregate_id"]].append(event.record["aggregate_version"])
        assert len(versions) == USERS + WORKSPACES
        for aggregate, seen in versions.items():
            assert seen == list(range(1, len(seen) + 1)), f"{aggregate} versions {seen}"

        expected = fold(events)
        wait_for(
            lambda: read_models(settings) == expected,
            deadline.left(120, "the projections"),
            "projections to equal the fold",
        )

        # The survivors did the work: the processor holds every partition (and every
        # command was decided, above), the projector keeps every projection and applied
        # events to each, the gateway answered every request sent after its twin died.
        survivor = stack.survivor("command-processor")
        alone = {member(settings, survivor): set(range(settings.partitions))}
        assert group_assignment(settings) == alone
        projector = stack.survivor("projector")
        assert answers(f"{projector.url}/readyz")
        assert [applied(projector, name) > 0 for name in KEPT] == [True] * len(KEPT)
        gateway = stack.survivor("gateway")
        before = stack.seen["gateway 202s before its kill"][1]
        assert metric_sum(gateway, ACCEPTED_202) - before >= load.after_gateway_kill > 0
        assert listeners(settings.gateway_port) == 1
        print(
            f"\nscale-out: {stack.seen}; {load.after_gateway_kill} 202s after the gateway "
            f"kill; failures {dict(load.failures)}; {len(unanswered)} unanswered but "
            f"stored, repeats {dict(repeats)}; {len(events)} events"
        )
    finally:
        stack.stop()
