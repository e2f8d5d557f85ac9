"""Two projector processes on one database: one keeps the projections, the other stands by
(not ready, applying nothing) and takes over from the checkpoints when the first is killed."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from test_projection_process import RUN, ProjectorProcess
from test_projection_support import EventWriter, all_caught_up, wait_until

from infra.config.settings import Settings
from streams.kafka.topics import ensure_topics

USERS = 20


class Instance(ProjectorProcess):
    def launch(self) -> Instance:
        """Start it and wait until it answers /healthz, ready or not."""
        self.process = subprocess.Popen([sys.executable, "-c", RUN], env=self.env)
        wait_until(lambda: self._answers("/healthz"), timeout=30, what="projector /healthz")
        return self

    def _answers(self, path: str) -> bool:
        assert self.process is not None and self.process.poll() is None, "projector exited"
        try:
            return self.get(path).status_code == 200
        except httpx.TransportError:
            return False

    def applied(self, projection: str) -> int:
        """Events this process applied to `projection` (0 before its first batch)."""
        pattern = rf'nexus_projection_events_applied_total{{projection="{projection}"}} (\S+)'
        found = re.search(pattern, self.get("/metrics").text)
        return int(float(found[1])) if found else 0


@pytest.fixture
def instances(settings: Settings) -> Iterator[list[Instance]]:
    started: list[Instance] = []
    yield started
    for instance in started:
        if instance.process is not None and instance.process.poll() is None:
            instance.process.kill()
            instance.process.wait()


def write_round(writer: EventWriter, n: int) -> None:
    for user in range(USERS):
        writer.event("user.profile_updated", f"u{user}", {"name": f"n{n}", "email": None})
    writer.flush()


@pytest.mark.fault
@pytest.mark.timeout(240)  # its waits: starts of 30 s, catch-ups of 30 s, takeover 20 s
def test_a_standby_projector_applies_nothing_until_it_takes_over_from_the_checkpoints(
    settings: Settings, instances: list[Instance]
) -> None:
    ensure_topics(settings)
    writer = EventWriter(settings)
    for user in range(USERS):
        writer.event("user.registered", f"u{user}", {"email": "e@x.io", "name": "n"})
    write_round(writer, 1)
    active = Instance(settings)
    instances.append(active)
    active.start()  # ready: it keeps every projection
    wait_until(all_caught_up(settings), what="the first instance catching up")

    standby = Instance(settings).launch()
    instances.append(standby)
    time.sleep(3)  # its runners have asked for their locks more than once by now
    assert standby.get("/readyz").status_code == 503
    for n in range(2, 6):
        write_round(writer, n)
    wait_until(all_caught_up(settings), what="the active instance catching up")
    assert standby.applied("users") == 0
    assert active.applied("users") == USERS * 6

    assert active.signal(signal.SIGKILL) == -signal.SIGKILL
    wait_until(standby.ready, timeout=20, what="the standby taking over")
    for n in range(6, 9):
        write_round(writer, n)
    wait_until(all_caught_up(settings), what="the new active instance catching up")

    # Exactly the events written after the kill: it resumed from the checkpoints, applying
    # none of the first instance's events again and skipping none.
    assert standby.applied("users") == USERS * 3
    with psycopg.connect(settings.resolved_database_url) as conn:
        rows = conn.execute("SELECT name, version, count(*) FROM public.users GROUP BY 1, 2")
        assert rows.fetchall() == [("n8", 9, USERS)]
    assert standby.signal(signal.SIGTERM) == 0
