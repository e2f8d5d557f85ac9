"""Taking over a saga partition reads the saga topic from the horizon, not from its start."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from confluent_kafka import Producer

from aggregates.user.events import ChannelAddress
from infra.config.settings import Settings
from sagas.circuit.breaker import CircuitConfig
from sagas.notification.commands import RecordAttemptFailure, RecordDelivery, StartNotification
from sagas.rendering import TemplateRenderer
from sagas.runtime.contents import RenderedContents
from sagas.runtime.engine import SagaEngine, SagaEventOut, Work
from schemas.codec import AvroCodec
from streams.kafka.config import producer_config
from streams.kafka.topics import Topics, ensure_topics
from streams.notifier.rebuild import load_partition
from streams.notifier.records import saga_record

DAY = 86_400_000
DATA = json.dumps({"user": {"name": "Ada", "email": "a@x"}, "app": {"name": "N", "url": "u"}})


def start(saga_id: str, at: int) -> Work:
    command = StartNotification(
        notification_id=saga_id,
        user_id="u-1",
        template="welcome",
        data=DATA,
        requested_at=at,
        deadline=at + 3_600_000,
        preferences=(ChannelAddress("webhook", "https://example.com/hook"),),
    )
    return Work(saga_id, 0, command)


def write(settings: Settings, events: list[tuple[SagaEventOut, int]]) -> None:
    codec, producer = AvroCodec(), Producer(producer_config(settings))
    topic = Topics.from_settings(settings).notifications
    for out, at in events:
        record = saga_record(out, datetime.fromtimestamp(at / 1000, UTC))
        value = codec.encode(out.event.TYPE, record)
        producer.produce(topic, value, key=out.saga_id, partition=0, timestamp=at)
    assert producer.flush(30) == 0


def test_only_sagas_that_started_after_the_horizon_are_rebuilt(settings: Settings) -> None:
    ensure_topics(settings)
    now = int(time.time() * 1000)
    old, recent = now - 10 * DAY, now - DAY
    engine = SagaEngine(RenderedContents(TemplateRenderer()), CircuitConfig(5, 1_000))
    stamped: list[tuple[SagaEventOut, int]] = []
    for works, at in [
        ([start("done-long-ago", old), start("ended-after-horizon", old)], old),
        ([Work("done-long-ago", 0, RecordDelivery("webhook", 1, "HTTP 200", 5))], old + 1),
        ([start("running", recent)], recent),
        ([Work("ended-after-horizon", 0, RecordAttemptFailure("webhook", 1, "410", False, now, 0))],
         now - 1_000),
    ]:  # fmt: skip
        stamped += [(out, at) for out in engine.run(works, at).events]
    write(settings, stamped)
    topic = Topics.from_settings(settings).notifications

    rebuilt = load_partition(settings, topic, 0, AvroCodec(), since_ms=now - 7 * DAY)
    everything = load_partition(settings, topic, 0, AvroCodec(), since_ms=now - 30 * DAY)

    assert set(rebuilt) == {"running"}
    running = rebuilt["running"]
    assert (running.version, running.state.status, running.started_at) == (3, "pending", recent)
    assert {s: saga.state.status for s, saga in everything.items()} == {
        "done-long-ago": "completed",
        "ended-after-horizon": "given_up",
        "running": "pending",
    }
