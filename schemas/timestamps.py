"""Epoch milliseconds, the schemas' form of a moment, and aware UTC datetimes; pure.

Avro `timestamp-millis` fields and the saga events' `*_at` longs both count milliseconds
since 1970-01-01 UTC. The conversion is exact integer arithmetic (no float rounding), and a
naive datetime is refused rather than read in the machine's local time. The clock itself
(`utcnow`) is in infra.config.clock: the domain, which imports this module, never reads a clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_MS = 86_400_000


# Both run for every tracked event, some twice: a timedelta's fields and positional arguments
# cost half of timedelta arithmetic and keyword arguments.
def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, floored; raises ValueError for a naive datetime."""
    if moment.tzinfo is not UTC and (moment.tzinfo is None or moment.utcoffset() is None):
        raise ValueError(f"a naive datetime has no epoch time: {moment!r}")
    delta = moment - EPOCH  # normalised: only `days` can be negative
    return delta.days * _DAY_MS + delta.seconds * 1000 + delta.microseconds // 1000


def from_epoch_ms(millis: int) -> datetime:
    """The exact aware UTC datetime of an epoch-milliseconds time."""
    return EPOCH + timedelta(0, 0, 0, millis)  # (days, seconds, microseconds, milliseconds)
