"""Test helper: a fault test's time, one budget that its waits spend in turn.

Each wait gets at most what is left of the budget, so a test that hangs fails with the
message of the wait that hung ("timed out waiting for every event"), before the test's
`pytest.mark.timeout`, which is set to the budget plus room for starting and stopping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Deadline:
    """`seconds` from now for everything the test waits for."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self._end = seconds, time.monotonic() + seconds

    def left(self, at_most: float, what: str) -> float:
        """Seconds for the next wait: `at_most`, or what is left when that is less."""
        left = self._end - time.monotonic()
        assert left > 1.0, f"no time left for {what}: the test's {self.seconds:.0f} s are spent"
        return min(at_most, left)

    def run(self, coroutine: Coroutine[Any, Any, T], at_most: float, what: str) -> T:
        """`asyncio.run(coroutine)`, failed with `what` when it outlasts its share."""
        seconds = self.left(at_most, what)

        async def bounded() -> T:
            limit = asyncio.timeout(seconds)
            try:
                async with limit:
                    return await coroutine
            except TimeoutError:
                if limit.expired():
                    raise AssertionError(f"{what}: not done within {seconds:.0f} s") from None
                raise

        return asyncio.run(bounded())
