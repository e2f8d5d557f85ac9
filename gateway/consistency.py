"""Read-your-writes: waiting until read models have applied a command's position.

A command's outcome carries the position ("partition-offset", on the events topic) of its
last event. The projections checkpoint, per partition, the next offset they will read, in
the same transaction as their rows, so a checkpoint past that offset means the rows show it.

Two waits use this: `?after=<position>` on queries, and `Prefer: wait` on commands, which
answers 200/201 only once every read model a route consults before acting (CONSULTED) has
applied the command's events. So a success is visible to the next request through any
gateway: registering a user, then notifying them at once, finds the user.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from projections import queries
from projections.memberships import MEMBERSHIPS_PROJECTION
from projections.users import USERS_PROJECTION
from projections.workspaces import WORKSPACES_PROJECTION

# The read models some route checks before acting: the notification route's user check and
# every visibility decision (gateway/visibility.py) read these and only these.
CONSULTED = tuple(p.name for p in (USERS_PROJECTION, WORKSPACES_PROJECTION, MEMBERSHIPS_PROJECTION))
_POSITION = re.compile(r"([0-9]{1,9})-([0-9]{1,18})\Z")  # ASCII, bounded: int() cannot fail
FIRST_POLL_S, LAST_POLL_S = 0.005, 0.05  # most waits end within a projector batch or two


@dataclass(frozen=True)
class Position:
    partition: int
    offset: int

    @classmethod
    def parse(cls, text: str | None) -> Position | None:
        """The position in "3-1542"; None for anything else."""
        match = _POSITION.match(text or "")
        return cls(int(match.group(1)), int(match.group(2))) if match else None


async def reached(
    pool: AsyncConnectionPool,
    topic: str,
    position: Position,
    projections: Sequence[str],
    deadline: float,
) -> bool:
    """Whether every one of `projections` applied `position` of `topic` before `deadline`
    (time.monotonic()); polls the checkpoints, often at first, then less."""
    pause = FIRST_POLL_S
    while True:
        remaining = max(deadline - time.monotonic(), 0.1)
        async with pool.connection(timeout=remaining) as conn:
            if await _caught_up(conn, topic, position, projections):
                return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(pause)
        pause = min(pause * 2, LAST_POLL_S)


async def _caught_up(
    conn: AsyncConnection[Any], topic: str, position: Position, projections: Sequence[str]
) -> bool:
    try:
        return await queries.caught_up(
            conn, list(projections), topic, position.partition, position.offset
        )
    except psycopg.errors.UndefinedTable:  # no projector has migrated this database yet
        await conn.rollback()
        return False


async def outcome_visible(
    pool: AsyncConnectionPool, topic: str, outcome: Mapping[str, Any], deadline: float
) -> bool:
    """Whether what an accepted outcome changed shows in every CONSULTED read model by
    `deadline`. A rejection or a command that changed nothing has nothing to wait for.
    The command is durable already, so a database that cannot answer only means "not
    known to be visible" (the caller answers 202), never an error for the client."""
    position = Position.parse(outcome.get("position"))
    if outcome.get("status") != "accepted" or position is None:
        return True
    try:
        return await reached(pool, topic, position, CONSULTED, deadline)
    except (psycopg.OperationalError, PoolTimeout):
        return False
