"""The projector as a real process: readiness, metrics, SIGKILL mid-stream, clean SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from projector_audit import applied_once_problems
from test_projection_support import EventWriter, all_caught_up, checkpoints, wait_until
from topic_reading import read_topic

from infra.config.settings import Settings
from infra.local.processes import free_port
from streams.kafka.topics import ensure_topics

RUN = (
    "from infra.config.settings import Settings; from projections.projector import run; "
    "run(Settings())"
)


class ProjectorProcess:
    """`projections.projector.run` in a child process configured by NEXUS_* variables."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "NEXUS_KAFKA_BOOTSTRAP": settings.resolved_kafka_bootstrap,
            "NEXUS_DATABASE_URL": settings.resolved_database_url,
            "NEXUS_TOPIC_PREFIX": settings.topic_prefix,
            "NEXUS_HOME": str(settings.home),
            "NEXUS_PROJECTOR_HEALTH_PORT": str(self.port),
            "NEXUS_LOG_LEVEL": "warning",
            "NEXUS_PROJECTION_AUDIT": "true",  # each application counted (projector_audit)
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", RUN], env=self.env)
        wait_until(self.ready, timeout=30, what="projector /readyz")

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=2)

    def ready(self) -> bool:
        assert self.process is not None and self.process.poll() is None, "projector exited"
        try:
            return self.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def signal(self, sig: signal.Signals) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(timeout=20)


@pytest.fixture
def projector_process(settings: Settings) -> Iterator[ProjectorProcess]:
    process = ProjectorProcess(settings)
    yield process
    if process.process is not None and process.process.poll() is None:
        process.process.kill()
        process.process.wait()


@pytest.mark.fault
@pytest.mark.timeout(240)  # its waits: starts of 30 s, catch-ups of 30 s
def test_sigkill_mid_stream_then_restart_applies_everything_once(
    settings: Settings, projector_process: ProjectorProcess
) -> None:
    ensure_topics(settings)
    writer = EventWriter(settings)
    users, rounds = 40, 60

    def produce() -> None:
        for user in range(users):
            writer.event("user.registered", f"u{user}", {"email": "e@x.io", "name": "n"})
        for n in range(rounds):
            for user in range(users):
                writer.event("user.profile_updated", f"u{user}", {"name": f"n{n}", "email": None})
            writer.flush()

    producer = threading.Thread(target=produce)
    projector_process.start()
    producer.start()
    url = settings.resolved_database_url
    wait_until(lambda: sum(v for k, v in checkpoints(url).items() if k[0] == "users") > 300)
    assert projector_process.signal(signal.SIGKILL) == -signal.SIGKILL
    producer.join()
    projector_process.start()
    wait_until(all_caught_up(settings), what="projections after the restart")
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT name, version, count(*) FROM public.users GROUP BY 1, 2")
        assert rows.fetchall() == [(f"n{rounds - 1}", rounds + 1, users)]
    events = {settings.topic("events"): read_topic(settings, settings.topic("events"))}
    assert applied_once_problems(settings, events, ["users"]) == []
    assert 'nexus_projection_events_applied_total{projection="users"}' in metrics(projector_process)
    caught_up = 'nexus_projection_lag_messages{projection="users"} 0.0'
    wait_until(lambda: caught_up in metrics(projector_process), timeout=5, what="lag 0")
    assert projector_process.signal(signal.SIGTERM) == 0


def metrics(process: ProjectorProcess) -> str:
    return process.get("/metrics").text
