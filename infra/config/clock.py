"""The real clock: the one `utcnow` that composition roots inject wherever time is read.

Domain code never imports this (an import contract forbids `infra` there); it takes `now`
as an argument. Conversions to and from epoch milliseconds are in schemas.timestamps.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)
