"""The snapshot records (schemas/system/aggregate.snapshot*), built and read without Kafka.

A snapshot is a head record counting the chunk records of its generation; chunks hold
(aggregate, version, state) entries. Chunks are cut at `chunk_bytes` of entries, so every
record stays well under the topic's max.message.bytes; one entry over `max_entry_bytes`
cannot be snapshotted at all (SnapshotTooLarge), and the writer skips that snapshot.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.util
import marshal
import pkgutil
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import cache
from typing import Any

import aggregates
from aggregates.handling import AggregateStates
from aggregates.state_codec import state_from_json, state_to_json
from schemas.codec import AvroCodec

HEAD_SCHEMA = "aggregate.snapshot"
CHUNK_SCHEMA = "aggregate.snapshot_chunk"
HEAD_KEY = b"head"
# Bump when the layout of snapshot records changes in a way the schemas do not show.
FORMAT = 1
# Per entry, beside its strings: Avro's lengths and the version's varint, generously.
ENTRY_OVERHEAD = 32

Key = tuple[str, str]
Entry = tuple[str, str, Any, int]  # aggregate type, aggregate id, state, version


class SnapshotTooLarge(ValueError):
    """One aggregate's state is too large for a snapshot record."""


class SnapshotInvalid(ValueError):
    """Stored snapshot records that do not add up to a snapshot; `reason` is a stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@cache
def decider_version() -> str:
    """Fingerprint of every module of the `aggregates` package and of FORMAT.

    Any change to a decider, a state or an event class changes it, so a snapshot folded by
    other code is never trusted; comment-only changes cost one full rebuild, nothing more.
    """
    digest = hashlib.sha256(f"format {FORMAT}".encode())
    modules = pkgutil.walk_packages(aggregates.__path__, "aggregates.")
    for module in sorted(modules, key=lambda m: m.name):
        digest.update(module.name.encode())
        digest.update(_module_bytes(module.name))
    return digest.hexdigest()[:32]


def _module_bytes(name: str) -> bytes:
    spec = importlib.util.find_spec(name)
    loader = spec.loader if spec is not None else None
    if not isinstance(loader, importlib.abc.InspectLoader):
        raise RuntimeError(f"cannot fingerprint {name}: its loader gives no source")
    source = loader.get_source(name)
    if source is not None:
        return str(source).encode()
    return marshal.dumps(loader.get_code(name))  # a deployment without sources


@dataclass(frozen=True)
class Head:
    """An aggregate.snapshot record; see its schema for the fields' meaning."""

    decider_version: str
    events_topic_id: str
    events_partition: int
    covered_offset: int
    generation: str
    base_offset: int
    chunks: int
    aggregates: int
    taken_at: datetime

    def encode(self, codec: AvroCodec) -> bytes:
        return codec.encode(HEAD_SCHEMA, asdict(self))

    @classmethod
    def decode(cls, codec: AvroCodec, payload: bytes | None) -> Head:
        """DecodeError if `payload` is no Avro of a known schema, SnapshotInvalid if not a head."""
        schema, record = codec.decode(payload)
        if schema.name != HEAD_SCHEMA:
            raise SnapshotInvalid("not_a_head", f"a {schema.name} under the head key")
        return cls(**record)


@dataclass(frozen=True)
class Generation:
    """Chunks from a base of every aggregate (sequence 0 on), then deltas of changed ones."""

    id: str
    base_offset: int  # snapshots-topic offset of chunk 0
    chunks: int
    entries: int


def chunk_key(sequence: int) -> bytes:
    """Compaction keeps the last chunk of each sequence; a new generation reuses them."""
    return f"chunk/{sequence}".encode()


def entries_of(states: AggregateStates, keys: Iterable[Key]) -> Iterator[Entry]:
    """The entries of `keys` in `states` (an overlay sees through to its parent)."""
    for aggregate_type, aggregate_id in keys:
        state, version = states.get(aggregate_type, aggregate_id)
        yield aggregate_type, aggregate_id, state, version


def encode_chunks(
    codec: AvroCodec,
    header: dict[str, Any],
    first_sequence: int,
    entries: Iterable[Entry],
    chunk_bytes: int,
    max_entry_bytes: int,
) -> list[bytes]:
    """Chunk records of `entries` numbered from `first_sequence`; `header` holds the
    decider_version, events_partition and generation fields every chunk repeats."""
    chunks: list[list[dict[str, Any]]] = [[]]
    size = 0
    for aggregate_type, aggregate_id, state, version in entries:
        text = state_to_json(aggregate_type, state)
        entry_bytes = len(text.encode()) + len(aggregate_id.encode()) + ENTRY_OVERHEAD
        if entry_bytes > max_entry_bytes:
            raise SnapshotTooLarge(f"{aggregate_type} {aggregate_id}: {entry_bytes} bytes")
        if chunks[-1] and size + entry_bytes > chunk_bytes:
            chunks.append([])
            size = 0
        chunks[-1].append(
            {"aggregate_type": aggregate_type, "aggregate_id": aggregate_id,
             "version": version, "state": text}
        )  # fmt: skip
        size += entry_bytes
    return [
        codec.encode(CHUNK_SCHEMA, {**header, "sequence": first_sequence + n, "entries": chunk})
        for n, chunk in enumerate(chunks)
        if chunk
    ]


def apply_chunks(
    codec: AvroCodec, head: Head, payloads: Iterable[bytes | None]
) -> tuple[AggregateStates, int]:
    """The states the chunks counted by `head` hold, and how many entries they carry.

    Chunks of other generations are skipped (they precede the head's base on the topic
    only if compaction has not removed them yet); anything else that does not add up
    raises SnapshotInvalid, or DecodeError / DataError for bytes that do not decode.
    """
    chunks: dict[int, list[dict[str, Any]]] = {}
    for payload in payloads:
        schema, record = codec.decode(payload)
        if schema.name != CHUNK_SCHEMA or record["generation"] != head.generation:
            continue
        if record["decider_version"] != head.decider_version:
            raise SnapshotInvalid("chunk_version", f"chunk {record['sequence']}")
        if record["sequence"] in chunks:
            raise SnapshotInvalid("chunk_repeated", f"chunk {record['sequence']}")
        chunks[record["sequence"]] = record["entries"]
    if sorted(chunks) != list(range(head.chunks)):
        raise SnapshotInvalid("chunk_missing", f"{len(chunks)} of {head.chunks} chunks found")
    table: dict[Key, tuple[Any, int]] = {}  # filled directly: a takeover does this 1e5 times
    for sequence in range(head.chunks):
        for entry in chunks[sequence]:
            kind = entry["aggregate_type"]
            state = state_from_json(kind, entry["state"])
            table[(kind, entry["aggregate_id"])] = (state, entry["version"])
    if len(table) != head.aggregates:
        raise SnapshotInvalid("aggregates", f"{len(table)}, head says {head.aggregates}")
    return AggregateStates(table), sum(len(entries) for entries in chunks.values())
