"""RenewingProducer with no broker to reach: a timed-out delivery brings a fresh producer,
callbacks still fire for the retired one, and a long outage renews once per timeout."""

from __future__ import annotations

import time

from confluent_kafka import KafkaError, Message

from infra.local.processes import free_port
from streams.kafka.renewing import RenewingProducer

TIMEOUT_MS = 300


def unreachable() -> RenewingProducer:
    return RenewingProducer(
        {"bootstrap.servers": f"127.0.0.1:{free_port()}", "message.timeout.ms": TIMEOUT_MS}
    )


def test_a_timed_out_delivery_renews_the_producer_at_the_next_call() -> None:
    producer, errors = unreachable(), list[int]()

    def delivered(error: KafkaError | None, _: Message) -> None:
        errors.append(error.code() if error else 0)

    producer.produce("t", b"v", "k", delivered)
    assert producer.flush(5) == 0
    assert errors == [KafkaError._MSG_TIMED_OUT]
    assert producer.renewals == 0  # only a call after the timeout renews
    producer.poll(0)
    assert producer.renewals == 1


def test_a_message_after_a_timeout_goes_to_a_fresh_producer() -> None:
    producer, errors = unreachable(), list[int]()

    def delivered(error: KafkaError | None, _: Message) -> None:
        errors.append(error.code() if error else 0)

    producer.produce("t", b"first", "k", delivered)
    producer.flush(5)
    producer.produce("t", b"second", "k", delivered)  # renews first: goes to the new one
    assert producer.renewals == 1
    assert producer.flush(5) == 0
    assert errors == [KafkaError._MSG_TIMED_OUT] * 2


def test_timeouts_of_a_retired_producer_do_not_renew_the_new_one() -> None:
    producer, seen = unreachable(), list[int]()

    def delivered(error: KafkaError | None, _: Message) -> None:
        seen.append(error.code() if error else 0)

    producer.produce("t", b"a", "k", delivered)
    time.sleep(TIMEOUT_MS / 1000 / 2)
    producer.produce("t", b"b", "k", delivered)  # same producer: no timeout seen yet
    producer.flush(5)
    assert seen == [KafkaError._MSG_TIMED_OUT] * 2
    producer.poll(0)
    producer.poll(0)
    assert producer.renewals == 1  # two timeouts, one renewal
