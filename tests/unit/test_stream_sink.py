"""A stream-processed projection applies each offset once, even when a batch repeats one."""

from __future__ import annotations

from dataclasses import dataclass

from streams.analytics.sink import unapplied


@dataclass(frozen=True)
class Record:
    at: tuple[int, int]  # (partition, offset)

    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return self.at[0]

    def offset(self) -> int:
        return self.at[1]

    def key(self) -> None:
        return None

    def value(self) -> None:
        return None


def offsets(records: list[Record], checkpoints: dict[int, int]) -> list[tuple[int, int]]:
    return [(m.partition() or 0, m.offset() or 0) for m in unapplied(records, checkpoints)]


def test_messages_below_their_checkpoint_are_dropped() -> None:
    batch = [Record((0, 4)), Record((0, 5)), Record((1, 2)), Record((1, 3))]
    assert offsets(batch, {0: 5, 1: 0}) == [(0, 5), (1, 2), (1, 3)]


def test_an_offset_fetched_twice_within_one_batch_is_applied_once() -> None:
    batch = [Record((0, 7)), Record((0, 8)), Record((1, 1)), Record((0, 7)), Record((0, 8))]
    batch.append(Record((0, 9)))
    assert offsets(batch, {0: 7}) == [(0, 7), (0, 8), (1, 1), (0, 9)]


def test_a_batch_out_of_order_keeps_every_offset() -> None:
    batch = [Record((0, 9)), Record((0, 7)), Record((0, 8)), Record((0, 9))]
    assert offsets(batch, {0: 7}) == [(0, 9), (0, 7), (0, 8)]
