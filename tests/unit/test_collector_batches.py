"""Collector batches on the analytics topic: framing, grouping by partition, cutting by size."""

from __future__ import annotations

import pytest

from projections.batch import BatchItem, batch_items
from schemas.codec import AvroCodec, DecodeError
from schemas.tracked_batch import BATCH_SCHEMA, cut, pack, unpack
from streams.ingest import collector_batches
from streams.kafka.partitioning import partition_for

CODEC = AvroCodec()


def rejected(n: int) -> bytes:
    """A single-object encoded record to carry (any schema will do for the framing)."""
    record = {"rejected_at": 0, "source": "s", "index": n, "errors": [], "payload": "x" * n}
    return CODEC.encode("analytics.rejected", record)


class Message:
    def __init__(self, value: bytes) -> None:
        self._value = value

    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return 3

    def offset(self) -> int:
        return 41

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return self._value


def test_a_batch_unpacks_to_its_events_in_order() -> None:
    events = [rejected(n) for n in range(5)]
    record = pack(CODEC, events)
    assert CODEC.writer_schema(record).name == BATCH_SCHEMA
    assert unpack(CODEC, record) == events


def test_a_batch_has_the_bytes_fastavro_writes() -> None:
    for count in (2, 3, 70, 200):
        events = [rejected(n) for n in range(count)]
        expected = CODEC.encode(BATCH_SCHEMA, {"events": events})
        assert pack(CODEC, events) == expected


def test_a_lone_event_is_its_own_record() -> None:
    event = rejected(1)
    assert pack(CODEC, [event]) is event
    assert unpack(CODEC, event) == [event]


def test_undecodable_records_are_refused_with_a_reason() -> None:
    with pytest.raises(DecodeError) as not_avro:
        unpack(CODEC, b"plain text")
    assert not_avro.value.reason == "not_avro"
    cut_short = pack(CODEC, [rejected(1), rejected(2)])[:-3]
    with pytest.raises(DecodeError) as corrupt:
        unpack(CODEC, cut_short)
    assert corrupt.value.reason == "corrupt_body"


def test_batch_items_sit_at_their_batch_position_and_carry_one_event() -> None:
    events = [rejected(n) for n in range(3)]
    items = batch_items(CODEC, Message(pack(CODEC, events)))
    assert [item.value() for item in items] == events
    assert {(i.topic(), i.partition(), i.offset(), i.key()) for i in items} == {("t", 3, 41, b"k")}
    assert all(isinstance(item, BatchItem) for item in items)
    lone = Message(rejected(1))
    assert batch_items(CODEC, lone) == (lone,)


def test_runs_stay_within_the_limit_and_cover_every_item_once() -> None:
    sizes = [4, 4, 4, 9, 1, 12, 3]
    runs = cut(sizes, limit=10)
    assert [list(range(len(sizes)))[run] for run in runs] == [[0, 1], [2], [3, 4], [5], [6]]
    assert cut([], limit=10) == []


def test_events_group_by_the_partition_their_key_would_take_alone() -> None:
    users = [f"user-{n}" for n in range(40)]
    events = [(user, rejected(n)) for n, user in enumerate(users * 3)]
    records = collector_batches(CODEC, events, partitions=6)
    seen: list[bytes] = []
    for key, value in records:
        assert isinstance(key, str)
        where = partition_for(key.encode(), 6)
        carried = unpack(CODEC, value)
        seen += carried
        members = [user for user, payload in events if payload in carried]
        assert {partition_for(user.encode(), 6) for user in members} == {where}
    assert sorted(seen) == sorted(value for _, value in events)
    assert len(records) == len({partition_for(u.encode(), 6) for u in users})


def test_a_group_over_the_byte_limit_becomes_several_records() -> None:
    big = rejected(300_000)
    records = collector_batches(CODEC, [("u", big)] * 7, partitions=6)
    assert [len(unpack(CODEC, value)) for _, value in records] == [3, 3, 1]
