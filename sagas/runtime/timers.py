"""The worker's pending timers: a heap by due time, one timer per identity.

Timers are durable through the saga log rather than here: each comes from an event
(`react`) or from a saga's state (`resume`), so a new owner rebuilds this from the topic.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

from sagas.notification.commands import Timer

TimerKey = tuple[str, str, str | None, int | None]


def timer_key(timer: Timer) -> TimerKey:
    return (timer.saga_id, timer.kind, timer.channel, timer.attempt)


class TimerQueue:
    def __init__(self) -> None:
        self._heap: list[tuple[int, int, TimerKey]] = []
        self._timers: dict[TimerKey, Timer] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._timers)

    def add(self, timer: Timer) -> None:
        """Keep `timer`; the same identity again replaces the earlier due time."""
        key = timer_key(timer)
        self._timers[key] = timer
        heapq.heappush(self._heap, (timer.due_at, next(self._seq), key))

    def next_due(self) -> int | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: int, limit: int) -> list[Timer]:
        due: list[Timer] = []
        while len(due) < limit:
            self._drop_stale()
            if not self._heap or self._heap[0][0] > now:
                break
            _, _, key = heapq.heappop(self._heap)
            due.append(self._timers.pop(key))
        return due

    def forget(self, keep: Callable[[Timer], bool]) -> None:
        self._timers = {key: t for key, t in self._timers.items() if keep(t)}

    def _drop_stale(self) -> None:
        """Heap entries whose timer was replaced or forgotten."""
        while self._heap:
            due_at, _, key = self._heap[0]
            timer = self._timers.get(key)
            if timer is not None and timer.due_at == due_at:
                return
            heapq.heappop(self._heap)
