"""Fault test: 5,000 commands over 250 aggregates while processes are SIGKILLed.

The command processor is killed twice and the projector once, mid-stream, the projector
while one of its batch transactions is open (held there by a table lock the test takes).
Afterwards no 202-answered command is lost, no event is duplicated, every aggregate's
versions are contiguous, the projections equal a fold over the events topic, and the
projector's audit shows each event applied exactly once by each projection.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from deadline import Deadline
from fault_http import FaultClient, fault_client
from projector_audit import applied_once_problems, backend_gone, kill_inside_transaction
from stack import ServiceProcess, prepared
from topic_reading import Stored, read_topic

from infra.config.settings import Settings

USERS = WORKSPACES = 125
PER_AGGREGATE = 20
TOTAL = (USERS + WORKSPACES) * PER_AGGREGATE
CONCURRENCY = 48
BUDGET_S = 480  # every wait of the test together (deadline.py)
SCOPES = ["users:write", "workspaces:write", "users:admin", "workspaces:admin"]
# Neither victim is on a command's way to its 202 (the gateway answers once Kafka holds the
# command), so the kills may cost a request nothing: any answer but a 202 fails the test.
ALLOWED: frozenset[int] = frozenset()


def user_commands(i: int) -> list[tuple[str, str, dict[str, Any]]]:
    first = (
        "POST",
        "/api/v1/users",
        {"user_id": f"u{i}", "email": f"u{i}@example.com", "name": "n0"},
    )
    return [first] + [
        ("PATCH", f"/api/v1/users/u{i}", {"name": f"n{k}"}) for k in range(1, PER_AGGREGATE)
    ]


def workspace_commands(i: int) -> list[tuple[str, str, dict[str, Any]]]:
    path = f"/api/v1/workspaces/w{i}"
    steps = [
        ("POST", "/api/v1/workspaces", {"workspace_id": f"w{i}", "name": "w0", "owner_id": f"u{i}"})
    ]
    for k in range(1, PER_AGGREGATE):
        if k % 2:
            steps.append(("POST", f"{path}/members", {"user_id": f"m{i}-{k}", "role": "member"}))
        else:
            steps.append(("PATCH", path, {"name": f"w{k}"}))
    return steps


class Load:
    """Each aggregate's commands in order, each sent until its 202, through `http`."""

    def __init__(self, http: FaultClient) -> None:
        self.http = http
        self.accepted: list[str] = []

    @property
    def failures(self) -> Counter[int]:
        return self.http.failures

    async def drive(
        self, steps: list[tuple[str, str, dict[str, Any]]], gate: asyncio.Semaphore
    ) -> None:
        for method, path, body in steps:  # in order: one aggregate's commands are sequential
            async with gate:
                response = await self.http.send(method, path, json=body)
                assert response is not None and response.status_code == 202, response
                self.accepted.append(response.json()["command_id"])


Kill = tuple[int, ServiceProcess, Callable[[], object]]  # at so many 202s, restart after


async def send_all(settings: Settings, kills: list[Kill]) -> Load:
    async with fault_client(settings, SCOPES, ALLOWED, connections=CONCURRENCY) as http:
        load = Load(http)
        gate = asyncio.Semaphore(CONCURRENCY)
        plans = [user_commands(i) for i in range(USERS)] + [
            workspace_commands(i) for i in range(WORKSPACES)
        ]
        # A task group: when one sender fails, the others are cancelled and the client closes.
        async with asyncio.TaskGroup() as senders:
            for plan in plans:
                senders.create_task(load.drive(plan, gate))
            for threshold, victim, kill in kills:
                while len(load.accepted) < threshold:
                    await asyncio.sleep(0.05)
                await asyncio.to_thread(kill)
                await asyncio.to_thread(victim.start, 120)
    return load


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def fold(events: list[Stored]) -> tuple[dict[str, Any], dict[str, Any], set[tuple[str, str, str]]]:
    """The expected read models, folded straight from the events topic."""
    users: dict[str, Any] = {}
    workspaces: dict[str, Any] = {}
    members: set[tuple[str, str, str]] = set()
    for stored in events:
        e, data = stored.record, stored.record["data"]
        if e["type"] == "user.registered":
            users[e["aggregate_id"]] = (data["email"], data["name"], e["aggregate_version"])
        elif e["type"] == "user.profile_updated":
            email, name, _ = users[e["aggregate_id"]]
            users[e["aggregate_id"]] = (
                data["email"] or email,
                data["name"] or name,
                e["aggregate_version"],
            )
        elif e["type"] in ("workspace.created", "workspace.renamed"):
            workspaces[e["aggregate_id"]] = (data["name"], e["aggregate_version"])
        elif e["type"] == "workspace.member_added":
            members.add((e["aggregate_id"], data["user_id"], data["role"]))
            workspaces[e["aggregate_id"]] = (
                workspaces[e["aggregate_id"]][0],
                e["aggregate_version"],
            )
    return users, workspaces, members


def read_models(
    settings: Settings,
) -> tuple[dict[str, Any], dict[str, Any], set[tuple[str, str, str]]]:
    with psycopg.connect(settings.resolved_database_url) as conn:
        users = {
            r[0]: tuple(r[1:])
            for r in conn.execute("SELECT user_id, email, name, version FROM users")
        }
        workspaces = {
            r[0]: tuple(r[1:])
            for r in conn.execute("SELECT workspace_id, name, version FROM workspaces")
        }
        members = {
            tuple(r) for r in conn.execute("SELECT workspace_id, user_id, role FROM memberships")
        }
    return users, workspaces, members  # type: ignore[return-value]


@pytest.mark.fault
@pytest.mark.timeout(BUDGET_S + 100)  # and the services stopped, the topics read
def test_sigkill_processor_twice_and_projector_once(settings: Settings) -> None:
    deadline = Deadline(BUDGET_S)
    settings = prepared(settings, projection_audit=True)
    processor = ServiceProcess("command-processor", settings)
    projector = ServiceProcess("projector", settings)
    gateway = ServiceProcess("gateway", settings)
    try:
        for service in (processor, projector, gateway):
            service.start(deadline.left(60, f"the {service.name} to start"))
        in_transaction: list[int] = []  # the backend of the batch the projector was killed in

        def kill_projector_mid_batch() -> None:
            # whichever of them the load feeds now: users come first, then workspaces
            fed = ["users", "workspaces", "memberships"]
            in_transaction.append(kill_inside_transaction(settings, fed, projector.kill))

        kills: list[Kill] = [
            (TOTAL // 4, processor, processor.kill),
            (TOTAL // 2, projector, kill_projector_mid_batch),
            (3 * TOTAL // 4, processor, processor.kill),
        ]
        load = deadline.run(send_all(settings, kills), 300, f"{TOTAL} commands sent")
        assert (processor.starts, projector.starts) == (3, 2)
        assert len(in_transaction) == 1, "the projector was not killed inside a transaction"
        assert len(load.accepted) == TOTAL == len(set(load.accepted))

        outcomes = wait_for(
            lambda: (o := read_topic(settings, settings.topic("outcomes")))
            and len(o) >= TOTAL
            and o,
            deadline.left(180, "every outcome"),
            "every outcome",
        )
        decided = Counter(o.record["command_id"] for o in outcomes)
        assert set(decided) == set(load.accepted), "a command answered 202 was lost"
        assert max(decided.values()) == 1, "a command was decided twice"
        assert {o.record["status"] for o in outcomes} == {"accepted"}

        events = read_topic(settings, settings.topic("events"))
        assert len(events) == TOTAL + WORKSPACES  # CreateWorkspace also adds the owner
        assert len({e.record["event_id"] for e in events}) == len(events), "duplicated event"
        versions: dict[str, list[int]] = defaultdict(list)
        for stored in events:
            versions[stored.record["aggregate_id"]].append(stored.record["aggregate_version"])
        assert len(versions) == USERS + WORKSPACES
        for aggregate, seen in versions.items():
            assert seen == list(range(1, len(seen) + 1)), f"{aggregate} versions {seen}"

        expected = fold(events)
        wait_for(
            lambda: read_models(settings) == expected,
            deadline.left(120, "the projections"),
            "projections to equal the fold",
        )
        topics = {settings.topic("events"): events, settings.topic("outcomes"): outcomes}
        wait_for(
            lambda: not applied_once_problems(settings, topics, ["command_outcomes"]),
            deadline.left(60, "the outcomes projection"),
            "the outcomes projection to apply every outcome",
        )
        assert applied_once_problems(settings, topics) == []
        assert backend_gone(settings, in_transaction[0]), "the killed batch's backend lives on"
    finally:
        for service in (gateway, projector, processor):
            service.stop()
