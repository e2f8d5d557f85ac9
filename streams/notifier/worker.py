"""The notifier's Kafka plumbing: requests in, saga events out, one transaction per step.

A step gathers new requests, attempt outcomes and due timers, runs them through the
engine, and writes the resulting saga events with the consumed request offsets in one
transaction. Only after it commits are deliveries claimed and sent and timers kept, so
nothing is sent for an event the log does not hold. The transactional producer commits
offsets with the consumer's group metadata: a worker that lost its partitions is fenced.
A fatal error (this worker fenced, as a static member or as a producer) ends `run`: the
watchdog records it first, so the process exits even if draining the senders hangs.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import assert_never

import structlog
from confluent_kafka import (
    OFFSET_INVALID,
    Consumer,
    KafkaException,
    Message,
    TopicPartition,
)

from infra.config.settings import Settings
from sagas.notification.commands import (
    DeliverAttempt,
    FireTimer,
    RecordAttemptFailure,
    RecordDelivery,
    RenderNotification,
    StartAttempt,
    Timer,
)
from sagas.notification.resume import resume
from sagas.runtime.engine import CHANNEL_SAGA_PREFIX, Saga, SagaEngine, Step, Work
from sagas.runtime.timers import TimerQueue
from schemas.codec import AvroCodec
from schemas.timestamps import epoch_ms
from streams.kafka.config import consumer_config
from streams.kafka.polling import poll_batch, raise_fatal
from streams.kafka.topics import Topics
from streams.kafka.transactions import TransactionalProducer, until_done
from streams.notifier import metrics
from streams.notifier.deliveries import DeliveryDesk, Finished
from streams.notifier.rebuild import load_partition
from streams.notifier.requests import Decoded
from streams.notifier.step_writer import write_step
from streams.notifier.traces import SagaTraces
from streams.process.serve import watchdog_for
from streams.process.watchdog import Watchdog

log = structlog.get_logger()
BATCH = 500
BACKLOG_BATCH = 32  # requests a step takes while the senders have a backlog
MAX_RESPONSE = 1000
EVICT_EVERY_MS = 60_000


class NotificationWorker:
    def __init__(
        self,
        settings: Settings,
        engine: SagaEngine,
        desk: DeliveryDesk,
        read_requests: Callable[[list[Message], int], Decoded],
        *,
        codec: AvroCodec,
        clock: Callable[[], datetime],
        jitter: Callable[[], float] = random.random,
        watchdog: Watchdog | None = None,
        traces: SagaTraces | None = None,
    ) -> None:
        self.settings, self.engine, self.desk = settings, engine, desk
        self.traces = traces or SagaTraces()
        self.read_requests, self.codec = read_requests, codec
        self.clock, self.jitter = clock, jitter
        self.topics = Topics.from_settings(settings)
        self.timers = TimerQueue()
        self.horizon_ms = settings.notification_horizon_s * 1000
        self._next_eviction = 0
        self.ready = threading.Event()  # set once partitions were first assigned
        self.watchdog = watchdog or watchdog_for(settings)
        self._partitions: set[int] = set()
        self._committed: dict[int, int] = {}  # partition -> offset this worker committed
        self.watchdog.require("no partitions assigned", lambda: bool(self._partitions))
        self._heartbeat = self.watchdog.heartbeat("notifier poll loop")
        self._pending: list[Work] = []
        self._pending_deliveries: list[DeliverAttempt] = []
        self._collected: list[Finished] = []  # outcomes recorded mid-step, for the next step
        group = f"{settings.topic_prefix}.notifier"
        self.consumer = Consumer(
            consumer_config(
                settings,
                group,
                **{
                    "group.instance.id": f"{group}.{settings.instance_id}",
                    "session.timeout.ms": 10000,
                    "heartbeat.interval.ms": 1000,
                },
            )
        )
        # two lanes: back-to-back steps need not wait out the previous commit markers
        self.transaction = TransactionalProducer(
            settings, f"{group}.{settings.instance_id}", lanes=2
        )

    def run(self, stop: threading.Event) -> None:
        self.transaction.open()  # fences our previous incarnation, aborts its transaction
        self.consumer.subscribe(
            [self.topics.notification_requests],
            on_assign=self._assigned,
            on_revoke=self._revoked,
            on_lost=self._revoked,
        )
        try:
            while not stop.is_set():
                self._heartbeat.beat()
                self.step(poll_batch(self.consumer, self._intake(), self._poll_timeout()))
        except BaseException as exc:
            self.watchdog.fail(f"notifier: {exc!r}")  # the process ends even if this hangs
            self.desk.close()
            raise
        self._drain()
        self.consumer.close()
        self.watchdog.retire(self._heartbeat)

    def _drain(self) -> None:
        """On a clean stop, record the sends in flight, so none is left in doubt."""
        self.desk.close()
        moment = self.clock()
        works = self._outcomes(epoch_ms(moment))
        if works:
            step = self.engine.run(works, epoch_ms(moment))
            self._commit(step, Decoded([], []), moment)
        log.info("notifier_drained", outcomes=len(works))

    def step(self, messages: list[Message]) -> None:
        raise_fatal(messages)
        messages = [m for m in messages if m.error() is None]
        self.traces.note(messages)
        moment = self.clock()
        now = epoch_ms(moment)
        decoded = self.read_requests(messages, now)
        works = [*self._pending, *decoded.works, *self._outcomes(now), *self._due(now)]
        self._pending = []
        self._evict(now)
        # Attempts started in earlier steps are in the log: refill the freed senders now,
        # rather than leave them idle while this step commits.
        self.desk.pump(self.engine.owned)
        if not works and not messages:
            self._dispatch([])
            return
        started = time.perf_counter()
        step = self.engine.run(works, now)
        self._refill()
        try:
            self._commit(step, decoded, moment)
        except KafkaException as exc:
            self._recover(exc)
            return
        metrics.STEP_SECONDS.observe(time.perf_counter() - started)
        for timer in step.timers:
            self.timers.add(timer)
        self._finish(step)
        self._dispatch(step.deliveries)

    def _commit(self, step: Step, decoded: Decoded, moment: datetime) -> None:
        positions = self._positions()
        self.transaction.commit(
            lambda producer: write_step(
                producer, self.codec, self.topics, step, decoded, moment, self.traces
            ),
            self.consumer,
            positions,
        )
        self._committed.update((tp.partition, tp.offset) for tp in positions)

    def _recover(self, exc: KafkaException) -> None:
        """Abort, then rebuild every owned saga from the log and rewind to committed offsets.

        The engine's memory ran ahead of the aborted step; the log is the truth.
        """
        log.error("notifier_step_failed", error=str(exc.args[0]))
        with self.watchdog.catching_up("recovering from an aborted step"):
            assignment = self.consumer.assignment()
            committed = dict(self._committed)  # where the aborted step began, where known
            rewind = [
                TopicPartition(tp.topic, tp.partition, committed.get(tp.partition, OFFSET_INVALID))
                for tp in assignment
            ]
            self._revoked(self.consumer, assignment)  # memory ran ahead of the aborted step
            self.transaction.abort(exc, self.consumer, rewind)
            self._assigned(self.consumer, assignment)
            self._committed.update(committed)

    def _positions(self) -> list[TopicPartition]:
        """Every owned partition's position: committing them all fences a zombie's step."""
        assignment = self.consumer.assignment()
        return [tp for tp in self.consumer.position(assignment) if tp.offset >= 0]

    def _finish(self, step: Step) -> None:
        for saga_id in step.finished:
            saga = self.engine.finish(saga_id)
            metrics.SAGAS_FINISHED.labels(status=saga.state.status).inc()

    def _dispatch(self, deliveries: list[DeliverAttempt]) -> None:
        self.desk.dispatch([*self._pending_deliveries, *deliveries])
        self._pending_deliveries = []
        self.desk.pump(self.engine.owned)
        metrics.IN_FLIGHT.set(self.desk.in_flight)
        metrics.WAITING.set(len(self.desk.waiting))
        metrics.TIMERS.set(len(self.timers))
        metrics.show_circuits(self.engine.circuit_statuses())

    def _intake(self) -> int:
        """Requests to take in one step: senders are refilled only between the parts of a
        step, so while attempts queue for them a long step would leave them idle."""
        return BACKLOG_BATCH if self.desk.backlogged else BATCH

    def _refill(self) -> None:
        """Record the sends finished so far and give their senders queued attempts, before
        the step's commit; those outcomes go into the next step."""
        self._collected.extend(self.desk.finished())
        self.desk.pump(self.engine.owned)

    def _outcomes(self, now: int) -> list[Work]:
        works = []
        collected, self._collected = self._collected, []
        for finished in [*collected, *self.desk.finished()]:
            saga = self.engine.owned.get(finished.delivery.notification_id)
            if saga is None:
                continue  # revoked meanwhile: the ledger has it, the new owner reads it there
            metrics.ATTEMPTS.labels(
                channel=finished.delivery.channel,
                outcome="delivered" if finished.result.ok else "failed",
            ).inc()
            works.append(
                Work(
                    finished.delivery.notification_id,
                    saga.partition,
                    self._outcome_command(finished, now),
                )
            )
        return works

    def _outcome_command(
        self, finished: Finished, now: int
    ) -> RecordDelivery | RecordAttemptFailure:
        delivery, result = finished.delivery, finished.result
        if result.ok:
            return RecordDelivery(
                channel=delivery.channel,
                attempt=delivery.attempt,
                provider_response=result.provider_response[:MAX_RESPONSE],
                latency_ms=int(result.latency_ms),
            )
        return RecordAttemptFailure(
            channel=delivery.channel,
            attempt=delivery.attempt,
            error=(result.error or "failed")[:MAX_RESPONSE],
            retryable=result.retryable,
            failed_at=now,
            jitter=min(self.jitter(), 0.999999),
        )

    def _due(self, now: int) -> list[Work]:
        works = []
        for timer in self.timers.pop_due(now, BATCH):
            fire = FireTimer(timer=timer, fired_at=now)
            if timer.saga_id.startswith(CHANNEL_SAGA_PREFIX):
                works.append(Work(timer.saga_id, -1, fire))
            elif (saga := self.engine.owned.get(timer.saga_id)) is not None:
                works.append(Work(timer.saga_id, saga.partition, fire))
        return works

    def _evict(self, now: int) -> None:
        if now >= self._next_eviction:
            self._next_eviction = now + EVICT_EVERY_MS
            if evicted := self.engine.evict(now - self.horizon_ms):
                log.info("finished_sagas_evicted", sagas=evicted)
            self.traces.keep_only(self.engine.owned)

    def _poll_timeout(self) -> float:
        if self._pending or self._pending_deliveries or self.desk.busy:
            return 0.002
        due = self.timers.next_due()
        if due is None:
            return 0.1
        return min(max((due - epoch_ms(self.clock())) / 1000, 0.0), 0.1)

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        since = epoch_ms(self.clock()) - self.horizon_ms
        with self.watchdog.catching_up(f"loading {len(partitions)} saga partitions"):
            for tp in partitions:
                # Right after an outage the broker may answer "not yet" (a newer leader
                # epoch, say): that is retried, not a reason to die.
                sagas = until_done(partial(self._load, tp.partition, since))
                self.engine.adopt(sagas)
                for saga_id, saga in sagas.items():
                    self._resume(saga_id, saga)
        self._partitions.update(tp.partition for tp in partitions)
        log.info("partitions_assigned", partitions=[tp.partition for tp in partitions])
        self.ready.set()

    def _load(self, partition: int, since: int) -> dict[str, Saga]:
        topic = self.topics.notifications
        return load_partition(self.settings, topic, partition, self.codec, since)

    def _resume(self, saga_id: str, saga: Saga) -> None:
        for output in resume(saga.state):
            match output:
                case Timer():
                    self.timers.add(output)
                case DeliverAttempt():
                    self._pending_deliveries.append(output)
                case RenderNotification():
                    command = self.engine.render(output)
                    self._pending.append(Work(saga_id, saga.partition, command))
                case StartAttempt():
                    self._pending.append(Work(saga_id, saga.partition, output))
                case _:
                    assert_never(output)

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        lost = {tp.partition for tp in partitions}
        self._partitions -= lost
        self._committed = {p: o for p, o in self._committed.items() if p not in lost}
        self.engine.release(lost)
        owned = self.engine.owned
        self.timers.forget(
            lambda t: t.saga_id.startswith(CHANNEL_SAGA_PREFIX) or t.saga_id in owned
        )
        self._pending = [w for w in self._pending if w.partition not in lost]
        self._pending_deliveries = [
            d for d in self._pending_deliveries if d.notification_id in owned
        ]
        # Recorded in the ledger: a saga taken over again resumes its attempt from there.
        self._collected = [f for f in self._collected if f.delivery.notification_id in owned]
        self.desk.forget(owned)
        log.info("partitions_revoked", partitions=sorted(lost))
