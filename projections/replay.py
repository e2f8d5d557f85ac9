"""Rebuild a projection from offset 0 into its next version, then swap that version live.

The live version keeps serving and updating during the rebuild. The swap is one transaction
holding the projection's registry row FOR UPDATE, which waits for the live runner's batch
in flight and blocks its next one: inside it the new version catches up to the topic's
current end, the registry names it live and the public views are repointed. The old
version's schema is dropped afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import structlog
from psycopg import Connection

from infra.config.settings import Settings
from projections import store, versions
from projections.catalog import PROJECTIONS, projection
from projections.migrations import migrate
from projections.model import Projection
from projections.rebuild import Rebuild, ReplayConflict
from schemas.codec import AvroCodec

__all__ = ["ReplayConflict", "ReplayResult", "replay", "replay_projection"]

log = structlog.get_logger()

REPLAY_LOCK_SPACE = 0x6E78  # first key of the per-projection session advisory lock
BATCH_SIZE = 10_000
MEMORY_ROWS = 500_000  # rows a fill holds in memory before it writes them (~1 KB each)


@dataclass(frozen=True)
class ReplayResult:
    """For `all`, the versions are 0 and `parts` holds each projection's result."""

    name: str
    old_version: int
    new_version: int
    events: int
    seconds: float
    parts: tuple[ReplayResult, ...] = ()

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def replay(settings: Settings, name: str, *, progress: bool = True) -> ReplayResult:
    """Rebuild `name` (a projection, or `all` one after another) and swap it live."""
    migrate(settings.resolved_database_url)
    codec = AvroCodec()
    if name != "all":
        return replay_projection(settings, projection(name), codec=codec, progress=progress)
    parts = tuple(
        replay_projection(settings, p, codec=codec, progress=progress) for p in PROJECTIONS.values()
    )
    events, seconds = sum(p.events for p in parts), sum(p.seconds for p in parts)
    return ReplayResult("all", 0, 0, events, seconds, parts)


def replay_projection(
    settings: Settings,
    target: Projection,
    *,
    codec: AvroCodec,
    progress: bool = True,
    batch_size: int = BATCH_SIZE,
    memory_rows: int = MEMORY_ROWS,
) -> ReplayResult:
    started = time.perf_counter()
    with store.connect(settings.resolved_database_url) as conn, _replay_lock(conn, target.name):
        rebuild = Rebuild(settings, target, conn, codec, batch_size, memory_rows)
        try:
            events = rebuild.fill(progress) + rebuild.swap()
        finally:
            rebuild.close()
        versions.drop_version(conn, target.name, rebuild.old_version)
    if rebuild.dead_letters.count:
        count = rebuild.dead_letters.count
        log.warning("replay_skipped_undecodable", projection=target.name, count=count)
    seconds = time.perf_counter() - started
    return ReplayResult(target.name, rebuild.old_version, rebuild.new_version, events, seconds)


@contextmanager
def _replay_lock(conn: Connection[Any], name: str) -> Iterator[None]:
    key = (REPLAY_LOCK_SPACE, name)
    row = conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", key).fetchone()
    if row is None or not row[0]:
        raise ReplayConflict(f"a replay of {name} is already running")
    try:
        yield
    finally:
        if not conn.closed:
            conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", key)
