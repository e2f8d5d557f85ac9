"""Collector batches: the tracked events of one ingestion in few records of the analytics topic.

An ingestion accepts events by the thousand; as a Kafka record each, every consumer would pay
its per-record cost per event (the Faust worker's is about 200 µs). So a record of the
analytics topic is either one tracked event or an `analytics.batch`: an Avro array of tracked
events, each still in single-object encoding, so both are decoded from schemas/ alone.
`streams.ingest` puts the events of one ingestion that share a partition (keyed by user, as
single events are) into one batch, cut at BATCH_BYTES.
"""

from __future__ import annotations

from collections.abc import Sequence

from schemas.avro_writer import zigzag_varint
from schemas.codec import MAGIC, AvroCodec

BATCH_SCHEMA = "analytics.batch"
BATCH_BYTES = 1024 * 1024  # of events in one batch record; the topic takes 4 MiB per record


def pack(codec: AvroCodec, payloads: Sequence[bytes]) -> bytes:
    """One record for `payloads`: a batch, or the event itself when it is alone.

    The body is the array as one block (its count, each item's length and bytes, then 0), as
    fastavro writes it; by hand, because fastavro's checks on each item cost more than this."""
    if len(payloads) == 1:
        return payloads[0]
    header = MAGIC + codec.registry.latest(BATCH_SCHEMA).fingerprint
    parts = [header, zigzag_varint(len(payloads))]
    for payload in payloads:
        parts += (zigzag_varint(len(payload)), payload)
    parts.append(b"\x00")
    return b"".join(parts)


def unpack(codec: AvroCodec, payload: bytes | None) -> list[bytes]:
    """The tracked events a record of the analytics topic carries; raises DecodeError."""
    if codec.writer_schema(payload).name != BATCH_SCHEMA:
        assert payload is not None  # writer_schema refuses None
        return [payload]
    events: list[bytes] = codec.decode(payload)[1]["events"]
    return events


def cut(sizes: Sequence[int], limit: int = BATCH_BYTES) -> list[slice]:
    """Consecutive runs of items whose sizes add up to at most `limit` (an item over it
    alone); the slices cover every item once, in order."""
    runs: list[slice] = []
    start, total = 0, 0
    for index, size in enumerate(sizes):
        if index > start and total + size > limit:
            runs.append(slice(start, index))
            start, total = index, 0
        total += size
    if start < len(sizes):
        runs.append(slice(start, len(sizes)))
    return runs
