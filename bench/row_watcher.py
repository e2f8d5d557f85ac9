"""Watches the users view for expected ids and notes when each row first appears.

A thread polls PostgreSQL every few milliseconds for the ids still pending. `seen` times
are time.monotonic(), comparable with the paced client's send times in the same process;
`decided` is each row's registered_at, when the command processor decided the command.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

import psycopg

QUERY = "SELECT user_id, registered_at FROM users WHERE user_id = ANY(%s)"


class RowWatcher(threading.Thread):
    def __init__(self, database_url: str, interval: float = 0.005) -> None:
        super().__init__(name="row-watcher", daemon=True)
        self.database_url, self.interval = database_url, interval
        self.seen: dict[str, float] = {}
        self.decided: dict[str, datetime] = {}
        self.polls = 0
        self.error: BaseException | None = None
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def expect(self, user_id: str) -> None:
        """Call before sending the command, so its row cannot appear unwatched."""
        with self._lock:
            self._pending.add(user_id)

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def wait_drained(self, timeout: float) -> bool:
        """True once every expected row was seen, False if `timeout` ran out first."""
        deadline = time.monotonic() + timeout
        while self.pending() and time.monotonic() < deadline and self.error is None:
            time.sleep(0.05)
        return self.pending() == 0

    def stop(self) -> None:
        self._stopping.set()
        self.join(10)

    def run(self) -> None:
        try:
            with psycopg.connect(self.database_url, autocommit=True) as conn:
                while not self._stopping.is_set():
                    self._poll(conn)
                    self._stopping.wait(self.interval)
        except BaseException as exc:  # reported by the benchmark, not lost in a thread
            self.error = exc

    def _poll(self, conn: psycopg.Connection[tuple[str, datetime]]) -> None:
        with self._lock:
            wanted = list(self._pending)
        if not wanted:
            return
        rows = conn.execute(QUERY, [wanted]).fetchall()
        now = time.monotonic()
        self.polls += 1
        with self._lock:
            for user_id, registered_at in rows:
                self.seen.setdefault(user_id, now)
                self.decided.setdefault(user_id, registered_at)
                self._pending.discard(user_id)
