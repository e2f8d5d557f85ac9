"""Writing one partition's snapshots inside its command transactions, and when to.

`SnapshotWriter` is driven by the partition's writer around each batch transaction:
`due` and `write` inside it (after the batch's events are delivered, so their offsets are
known), then `committed` or `aborted`. What a snapshot holds is therefore committed with,
and only with, the events it covers. A snapshot never costs a command its outcome: if
encoding fails it is skipped, and after a transaction that carried one fails, the batch is
retried without, snapshots pausing for a back-off that doubles with each failure.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from prometheus_client import Counter

from aggregates.handling import AggregateStates
from infra.config.settings import Settings
from schemas.codec import AvroCodec
from streams.kafka.topics import MAX_MESSAGE_BYTES
from streams.snapshots.records import (
    HEAD_KEY,
    Entry,
    Generation,
    Head,
    Key,
    chunk_key,
    decider_version,
    encode_chunks,
    entries_of,
)

log = structlog.get_logger()
SNAPSHOTS = Counter("nexus_snapshots_total", "Snapshots written, by kind", ["kind"])
# A generation is rewritten from scratch once it holds this many entries per live aggregate,
# which bounds what a takeover reads to about that many states per aggregate.
REBASE_FACTOR = 2
MAX_PAUSE_S = 3600.0
FLUSH_TIMEOUT_S = 30


@dataclass(frozen=True)
class SnapshotPolicy:
    """When snapshots are taken (every `every_events` events or `every_s` seconds, whichever
    comes first, if anything changed) and which version they carry and trust."""

    every_events: int = 10_000  # 0 turns snapshots off: neither read nor written
    every_s: float = 60.0
    chunk_bytes: int = 512 * 1024
    max_entry_bytes: int = MAX_MESSAGE_BYTES // 2
    version: str = field(default_factory=decider_version)

    @property
    def enabled(self) -> bool:
        return self.every_events > 0

    @classmethod
    def from_settings(cls, settings: Settings) -> SnapshotPolicy:
        return cls(every_events=settings.snapshot_every_events, every_s=settings.snapshot_every_s)


@dataclass(frozen=True)
class Resume:
    """What a takeover leaves for the next snapshot to build on."""

    covered_offset: int  # the states hold every event before this events offset
    uncovered: int  # events folded since the last snapshot's covered offset
    dirty: frozenset[Key]  # aggregates those events changed
    generation: Generation | None  # None: the next snapshot is a new base
    events_topic_id: str | None  # None: snapshots cannot be written


@dataclass(frozen=True)
class _Pending:
    generation: Generation
    kind: str
    entries: int


class SnapshotWriter:
    def __init__(
        self,
        policy: SnapshotPolicy,
        codec: AvroCodec,
        topic: str,
        partition: int,
        resume: Resume,
        now: Callable[[], datetime],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy, self.codec, self.topic, self.partition = policy, codec, topic, partition
        self.now, self.clock = now, clock
        self.events_topic_id = resume.events_topic_id
        self.covered, self.uncovered = resume.covered_offset, resume.uncovered
        self.dirty: set[Key] = set(resume.dirty)
        self.generation = resume.generation
        self._last = clock()
        self._paused_until, self._failures = 0.0, 0
        self._pending: _Pending | None = None

    def due(self, batch_events: int) -> bool:
        """Whether the batch being written should carry a snapshot."""
        uncovered = self.uncovered + batch_events
        if not self.policy.enabled or self.events_topic_id is None or uncovered == 0:
            return False
        at = self.clock()
        if at < self._paused_until:
            return False
        return uncovered >= self.policy.every_events or at - self._last >= self.policy.every_s

    def write(
        self,
        producer: Producer,
        committed: AggregateStates,
        staged: AggregateStates,
        last_event_offset: int | None,
    ) -> None:
        """Produce the snapshot of `staged` (over `committed`) into the open transaction:
        a delta of what changed since the last one, or a new base of every aggregate."""
        assert self.events_topic_id is not None
        added = [key for key in staged.states if key not in committed.states]
        live = len(committed.states) + len(added)
        gen, keys = self.generation, sorted(self.dirty | staged.states.keys())
        rebase = gen is None or gen.entries + len(keys) > REBASE_FACTOR * live
        if rebase or gen is None:
            gen, keys = Generation(uuid.uuid4().hex, -1, 0, 0), [*committed.states, *added]
        chunks = self._encode(gen, entries_of(staged, keys))
        if chunks is None or (rebase and not chunks):
            return
        offsets = self._produce_chunks(producer, gen.chunks, chunks, flush=rebase)
        base_offset = offsets[0] if rebase else gen.base_offset
        gen = Generation(gen.id, base_offset, gen.chunks + len(chunks), gen.entries + len(keys))
        covered = self.covered if last_event_offset is None else last_event_offset + 1
        head = Head(
            self.policy.version, self.events_topic_id, self.partition, covered, gen.id,
            gen.base_offset, gen.chunks, live, self.now(),
        )  # fmt: skip
        self._produce(producer, HEAD_KEY, head.encode(self.codec))
        self._pending = _Pending(gen, "base" if rebase else "delta", len(keys))

    def committed(
        self, changed: Collection[Key], batch_events: int, last_event_offset: int | None
    ) -> None:
        """The batch transaction committed: its changes are covered, or await the next."""
        if last_event_offset is not None:
            self.covered = last_event_offset + 1
        pending, self._pending = self._pending, None
        if pending is None:
            self.dirty.update(changed)
            self.uncovered += batch_events
            return
        self.generation, self.uncovered, self._failures = pending.generation, 0, 0
        self.dirty.clear()
        self._last = self.clock()
        SNAPSHOTS.labels(kind=pending.kind).inc()
        log.info(
            "snapshot_written", partition=self.partition, kind=pending.kind,
            entries=pending.entries, chunks=pending.generation.chunks, covered=self.covered,
        )  # fmt: skip

    def aborted(self) -> None:
        """The batch transaction failed: if it carried a snapshot, its retry goes without."""
        if self._pending is None:
            return
        self._pending = None
        self._pause("transaction_failed")

    def _pause(self, reason: str) -> None:
        self._failures += 1
        pause = min(MAX_PAUSE_S, self.policy.every_s * 2 ** (self._failures - 1))
        self._paused_until = self.clock() + pause
        log.warning("snapshot_paused", partition=self.partition, reason=reason, seconds=pause)

    def _encode(self, gen: Generation, entries: Iterable[Entry]) -> list[bytes] | None:
        header = {
            "decider_version": self.policy.version,
            "events_partition": self.partition,
            "generation": gen.id,
        }
        try:
            return encode_chunks(
                self.codec, header, gen.chunks, entries, self.policy.chunk_bytes,
                self.policy.max_entry_bytes,
            )  # fmt: skip
        except Exception:  # a snapshot is a cache: never let it cost a batch
            log.exception("snapshot_skipped", partition=self.partition)
            self._pause("encoding_failed")
            return None

    def _produce_chunks(
        self, producer: Producer, first: int, chunks: list[bytes], *, flush: bool
    ) -> list[int]:
        """Offsets of the chunks if `flush` (a base's head names its first chunk's offset)."""
        delivered: dict[int, int] = {}
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                errors.append(err)
            else:
                delivered[int(msg.key().removeprefix(b"chunk/"))] = msg.offset()

        for sequence, chunk in enumerate(chunks, start=first):
            self._produce(producer, chunk_key(sequence), chunk, on_delivery)
        if not flush:
            return []
        if producer.flush(FLUSH_TIMEOUT_S) > 0 or errors or first not in delivered:
            error = errors[0] if errors else KafkaError(KafkaError._MSG_TIMED_OUT)
            raise KafkaException(error)
        return [delivered[sequence] for sequence in range(first, first + len(chunks))]

    def _produce(
        self,
        producer: Producer,
        key: bytes,
        value: bytes,
        on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
    ) -> None:
        """Produce onto the partition's own snapshots partition; a full local queue fails
        the transaction as Kafka errors do, so that the batch is retried without."""
        extra = {} if on_delivery is None else {"on_delivery": on_delivery}
        try:
            producer.produce(self.topic, value, key=key, partition=self.partition, **extra)
        except BufferError:
            raise KafkaException(KafkaError(KafkaError._QUEUE_FULL)) from None
