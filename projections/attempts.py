"""How often each event failed its projection's handler, and when to give up on it. Pure.

A batch whose handler fails on an event rolls back and is tried again from its checkpoint:
a failure that passes (a row another event had to write first) costs a retry. An event that
has failed `limit` tries in all (NEXUS_PROJECTION_MAX_TRIES) is dead-lettered and passed over
(projections.batch).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

Position = tuple[int, int]  # (partition, offset) of an event in its topic


class Attempts:
    """Failed tries per event position, kept until a checkpoint passes the event."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._failures: dict[Position, int] = {}

    def failed(self, positions: Iterable[Position]) -> None:
        for position in positions:
            self._failures[position] = self._failures.get(position, 0) + 1

    def last_try(self, position: Position) -> bool:
        """Whether the try under way is the event's last: give up if it fails once more."""
        return self._failures.get(position, 0) + 1 >= self.limit

    def tries(self, position: Position) -> int:
        """Failed tries so far."""
        return self._failures.get(position, 0)

    def committed(self, offsets: Mapping[int, int]) -> None:
        """A checkpoint (partition -> next offset) committed: forget the events it passed."""
        self._failures = {
            (partition, offset): count
            for (partition, offset), count in self._failures.items()
            if offset >= offsets.get(partition, 0)
        }

    def retrying(self) -> bool:
        """Some event failed and no checkpoint has passed it yet."""
        return bool(self._failures)
