"""One projector instance at a time keeps each projection: a PostgreSQL advisory lock apiece.

Projections are assigned every partition of their topic (no consumer group splits them), so
two projector instances would both apply every event. Instead the runner of a projection takes
its lock on the very session its batches write on, before reading the checkpoints:
- While an instance holds the lock, the others' runners stand by, asking again every second.
- Writes happen only while the lock is held: a session that ends (its instance killed, its
  connection lost) releases the lock and can write nothing more. The next holder reads the
  checkpoints the last one committed with its rows, so no event is applied twice or skipped.
"""

from __future__ import annotations

import threading
from typing import Any

from psycopg import Connection

# Two-key advisory locks: this namespace, then the projection's name; per database.
_TRY_LOCK = "SELECT pg_try_advisory_lock(hashtext('nexus.projection'), hashtext(%s))"


def try_keep(conn: Connection[Any], projection: str) -> bool:
    """Take the projection's lock for this session unless another session holds it."""
    row = conn.execute(_TRY_LOCK, [projection]).fetchone()
    return bool(row and row[0])


def keep(
    conn: Connection[Any],
    projection: str,
    stopping: threading.Event,
    standby: threading.Event,
    retry_s: float = 1.0,
) -> bool:
    """Block until this session holds the projection's lock (True) or `stopping` is set
    (False); `standby` is set while another session holds it."""
    try:
        while not stopping.is_set():
            if try_keep(conn, projection):
                standby.clear()
                return True
            standby.set()
            stopping.wait(retry_s)
        return False
    except BaseException:
        conn.close()  # whether it holds the lock is unknown: it must not write, start over
        raise
