"""Test helper: steady loads that run while a fault is injected.

Three loads, each in a thread of its own, each paced to a rate until `stop` is set (so a
slow machine sends less, never later):
- `CommandLoad`: commands through the gateway over a fixed set of users and workspaces,
  one aggregate's commands in order; a failure the fault explains (fault_http: a 503 while
  the broker is away) is retried as a new command (not acknowledged, though it may have
  been stored: such a command may be decided too); any other ends the load, and the test.
- `request_load`: notification requests produced straight to Kafka for webhook users.
- `tracked_load`: tracked analytics events produced straight to Kafka.
The producers of the last two retry within librdkafka (idempotent, a long message timeout)
rather than in the test, so every request and event is in the topic exactly once.
`Loads` runs the three at once and names the checks (fault_checks) that must pass after.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from confluent_kafka import KafkaError, Message, Producer
from fault_checks import commands_problem, notifications_problem, rollups_problem, workflows_problem
from fault_http import FaultClient, fault_client
from test_fault_kill import user_commands, workspace_commands
from tracked_events import synthetic
from webhook_sink import SinkLog

from gateway.auth import TokenVerifier
from infra.config.settings import Settings
from sagas.notification.request import submission
from schemas.codec import AvroCodec
from streams.kafka.config import producer_config
from streams.notification_requests import request_record

PATIENT_MS = 180_000  # a producer that outlasts any outage a test injects
STALL_S = 15  # no acknowledgement this long while messages wait: a wedged producer
DATA = {"user": {"name": "Ada", "email": "ada@example.com"}, "app": {"name": "N", "url": "u"}}
SCOPES = ["users:write", "workspaces:write", "users:admin", "workspaces:admin"]


class Pacer:
    """Spaces calls `1 / rate` seconds apart, across threads or tasks."""

    def __init__(self, rate: float) -> None:
        self.interval, self._next, self._lock = 1.0 / rate, time.monotonic(), threading.Lock()

    def delay(self) -> float:
        with self._lock:
            now = time.monotonic()
            self._next = max(self._next + self.interval, now)
            return self._next - now


class CommandLoad(threading.Thread):
    """`aggregates` users and as many workspaces, up to `per_aggregate` commands each; a
    request may fail only as `allowed` says (fault_http), anything else ends the load with
    its `error`."""

    def __init__(
        self,
        settings: Settings,
        aggregates: int,
        per_aggregate: int,
        rate: float,
        stop: threading.Event,
        allowed: Collection[int],
    ) -> None:
        super().__init__(name="command-load", daemon=True)
        self.settings, self.aggregates, self.rate, self.stop = settings, aggregates, rate, stop
        self.allowed = allowed
        self.plans = [user_commands(i)[:per_aggregate] for i in range(aggregates)] + [
            workspace_commands(i)[:per_aggregate] for i in range(aggregates)
        ]
        self.total = sum(len(plan) for plan in self.plans)
        self.accepted: list[str] = []
        self.failures: Counter[int] = Counter()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._send_all())
        except BaseException as exc:  # reported by the test
            self.error = exc

    async def _send_all(self) -> None:
        pacer = Pacer(self.rate)
        async with (
            fault_client(self.settings, SCOPES, self.allowed, connections=64) as http,
            asyncio.TaskGroup() as senders,
        ):
            self.failures = http.failures
            for plan in self.plans:
                senders.create_task(self._drive(http, plan, pacer))

    async def _drive(
        self, http: FaultClient, plan: list[tuple[str, str, dict[str, Any]]], pacer: Pacer
    ) -> None:
        for method, path, body in plan:  # in order: one aggregate's commands are sequential
            if self.stop.is_set():
                return
            response = await http.send(
                method, path, json=body, pace=pacer.delay, give_up=self.stop.is_set
            )
            if response is None:  # stopped while it was refused: not acknowledged
                return
            assert response.status_code == 202, response
            self.accepted.append(response.json()["command_id"])


class ProducedLoad(threading.Thread):
    """Produces `payloads` (key, value, and the id of what it holds) to `topic` at `rate`;
    counts acknowledgements.

    librdkafka can wedge a partition for good after its leader was briefly -1 (#5430: a
    broker fenced on its resume); the messages for it wait in its queue. When
    acknowledgements stall for STALL_S while messages wait, the queue is purged and produced
    again through a fresh producer; the old one is kept to settle what it has in flight. A
    queued message may have been in flight before (a retry after its broker died, its answer
    lost), so one produced again may be in the topic twice: `resent` names those.
    """

    def __init__(
        self,
        settings: Settings,
        topic: str,
        payloads: list[tuple[str, bytes, str]],
        rate: float,
        stop: threading.Event,
    ) -> None:
        super().__init__(name=f"load-{topic}", daemon=True)
        self.settings, self.topic, self.payloads, self.rate = settings, topic, payloads, rate
        self.stop = stop
        self.produced = self.acknowledged = self.renewals = 0
        self.errors: list[str] = []
        self.resent: set[str] = set()  # ids produced again after a purge
        self._purged: list[tuple[str, bytes, str]] = []
        self._last_progress = time.monotonic()
        self._producer, self._retired = self._new_producer(), list[Producer]()

    def run(self) -> None:
        pacer = Pacer(self.rate)
        for payload in self.payloads:
            time.sleep(pacer.delay())
            if self.stop.is_set():
                break
            self.produced += 1
            self._produce(payload)
            self._unstick()
        deadline = time.monotonic() + PATIENT_MS / 1000
        while self._waiting() and time.monotonic() < deadline:
            self._producer.poll(0.2)
            self._unstick()
        if left := self._waiting():
            self.errors.append(f"{left} never delivered")

    def _waiting(self) -> int:
        return len(self._purged) + sum(len(p) for p in [self._producer, *self._retired])

    def _new_producer(self) -> Producer:
        return Producer(producer_config(self.settings, **{"message.timeout.ms": PATIENT_MS}))

    @property
    def sent(self) -> list[str]:
        """The ids of the payloads produced so far."""
        return [id_ for _, _, id_ in self.payloads[: self.produced]]

    def _produce(self, payload: tuple[str, bytes, str]) -> None:
        key, value, _ = payload

        def delivered(error: KafkaError | None, _: Message) -> None:
            if error is None:
                self.acknowledged += 1
                self._last_progress = time.monotonic()
            elif error.code() == KafkaError._PURGE_QUEUE:
                self._purged.append(payload)
            else:
                self.errors.append(str(error))

        while True:
            try:
                self._producer.produce(self.topic, value, key=key, on_delivery=delivered)
                return
            except BufferError:
                self._producer.poll(0.1)

    def _unstick(self) -> None:
        """Serves callbacks, replaces a stalled producer, produces again what was purged."""
        for producer in [self._producer, *self._retired]:
            producer.poll(0)
        if len(self._producer) and time.monotonic() - self._last_progress > STALL_S:
            old, self._producer = self._producer, self._new_producer()
            old.purge(in_queue=True, in_flight=False)
            old.poll(0)  # fires the purged messages' callbacks
            self._retired.append(old)
            self.renewals += 1
            self._last_progress = time.monotonic()
        purged, self._purged = self._purged, []
        for payload in purged:
            self.resent.add(payload[2])
            self._produce(payload)


def request_load(
    settings: Settings, users: list[str], count: int, rate: float, stop: threading.Event
) -> ProducedLoad:
    """Up to `count` notification requests (template welcome) spread over `users`."""
    codec, payloads = AvroCodec(), []
    for i in range(count):
        request = submission(
            user_id=users[i % len(users)],
            template="welcome",
            data=DATA,
            requested_by="fault-test",
            submitted_at=int(time.time() * 1000),
            idempotency_key=f"pause-{i}",
        )
        value = codec.encode(request.TYPE, request_record(request))
        payloads.append((request.notification_id, value, request.notification_id))
    return ProducedLoad(settings, settings.topic("notification-requests"), payloads, rate, stop)


def tracked_load(
    settings: Settings, count: int, rate: float, stop: threading.Event
) -> ProducedLoad:
    """Up to `count` tracked events over the last 20 minutes, some late, keyed by user."""
    codec = AvroCodec()
    start = datetime.now(UTC) - timedelta(minutes=20)
    payloads = [
        (event["user_id"], codec.encode(event["type"], event), event["event_id"])
        for event in synthetic(count, start, 20 * 60, seed=11)
    ]
    return ProducedLoad(settings, settings.topic("analytics"), payloads, rate, stop)


def webhook_users(settings: Settings, count: int, url: str) -> list[str]:
    """`count` users whose one channel is a webhook to `url`, visible in the read models."""
    verifier = TokenVerifier(
        settings.resolved_jwt_secret(), settings.jwt_issuer, settings.jwt_audience
    )
    token = verifier.issue("ops", ["users:read", "users:write", "users:admin"])
    headers = {"Authorization": f"Bearer {token}", "Prefer": "wait=15"}
    users, last = [], ""
    with httpx.Client(base_url=f"http://127.0.0.1:{settings.gateway_port}", timeout=30) as api:
        for i in range(count):
            body = {"email": f"hook{i}-{uuid.uuid4().hex[:6]}@example.com", "name": f"H{i}"}
            created = api.post("/api/v1/users", json=body, headers=headers)
            assert created.status_code == 201, created.text  # set up before any fault
            user_id = created.json()["aggregate_id"]
            channels = {"channels": [{"channel": "webhook", "address": url}]}
            done = api.put(f"/api/v1/users/{user_id}/preferences", json=channels, headers=headers)
            assert done.status_code == 200, done.text
            users.append(user_id)
            last = done.json()["position"]
        seen = api.get(f"/api/v1/users/{users[-1]}", params={"after": last}, headers=headers)
        assert seen.status_code == 200, seen.text
    return users


class Loads:
    """The three loads at once, over webhook users made first; `checks` once they stopped.
    `allowed`: what the fault may cost a command request (fault_http)."""

    def __init__(
        self,
        settings: Settings,
        sink_port: int,
        allowed: Collection[int],
        *,
        commands_rate: float = 150,
    ) -> None:
        self.settings, self.stop = settings, threading.Event()
        users = webhook_users(settings, 8, f"http://127.0.0.1:{sink_port}/hook")
        self.commands = CommandLoad(settings, 150, 20, commands_rate, self.stop, allowed)
        self.requests = request_load(settings, users, 2_000, 15, self.stop)
        self.tracked = tracked_load(settings, 50_000, 400, self.stop)
        self.threads: list[threading.Thread] = [self.commands, self.requests, self.tracked]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self, timeout: float) -> None:
        """Stop sending; every message produced is acknowledged before this returns."""
        self.stop.set()
        end = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, end - time.monotonic()))
        alive = [thread.name for thread in self.threads if thread.is_alive()]
        assert not alive, f"still sending {timeout:.0f} s after the stop: {alive}"
        commands, requests, tracked = self.commands, self.requests, self.tracked
        assert commands.error is None, f"the command load failed: {commands.error!r}"
        assert not requests.errors and not tracked.errors, (requests.errors, tracked.errors)
        assert len(commands.accepted) == len(set(commands.accepted)) > 0
        for load in (requests, tracked):
            counts = (load.topic, load.acknowledged, load.produced)
            assert load.acknowledged == load.produced > 0, counts

    def checks(self, sink: SinkLog) -> dict[str, Callable[[], str]]:
        settings = self.settings
        ids, tracked = self.requests.sent, self.tracked
        accepted = self.commands.accepted
        return {
            "commands": lambda: commands_problem(settings, accepted, self.commands.aggregates),
            "notifications": lambda: notifications_problem(settings, ids, sink),
            "rollups": lambda: rollups_problem(settings, tracked.sent, tracked.resent),
            "workflows": lambda: workflows_problem(settings),
        }

    def summary(self) -> str:
        return (
            f"{len(self.commands.accepted)} commands (not acknowledged:"
            f" {dict(self.commands.failures)}), {self.requests.produced} notifications,"
            f" {self.tracked.produced} tracked events ({len(self.tracked.resent)} produced again)"
        )
