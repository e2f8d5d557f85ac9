"""The clock and the epoch-milliseconds conversions: exact, aware, in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from infra.config.clock import utcnow
from schemas.timestamps import EPOCH, epoch_ms, from_epoch_ms


def test_utcnow_is_aware_utc_and_current() -> None:
    before = datetime.now(UTC)
    now = utcnow()
    assert now.tzinfo is UTC
    assert before <= now <= datetime.now(UTC)


@pytest.mark.parametrize("millis", [0, 1, -1, 1_735_787_045_678, 253_402_300_799_999])
def test_epoch_ms_roundtrips_exactly(millis: int) -> None:
    moment = from_epoch_ms(millis)
    assert moment.tzinfo is UTC
    assert epoch_ms(moment) == millis


def test_epoch_ms_counts_from_1970_utc_whatever_the_offset() -> None:
    paris = datetime(2025, 1, 2, 4, 4, 5, 678000, tzinfo=timezone(timedelta(hours=1)))
    assert epoch_ms(paris) == 1_735_787_045_678
    assert from_epoch_ms(1_735_787_045_678) == paris
    assert from_epoch_ms(0) == EPOCH


def test_epoch_ms_floors_sub_millisecond_time_without_float_error() -> None:
    # 2**53 ms and beyond lose precision through float seconds; integers do not.
    moment = datetime(2025, 1, 2, 3, 4, 5, 678999, tzinfo=UTC)
    assert epoch_ms(moment) == 1_735_787_045_678
    assert epoch_ms(from_epoch_ms(-1) + timedelta(microseconds=1)) == -1


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        epoch_ms(datetime(2025, 1, 2, 3, 4, 5))
