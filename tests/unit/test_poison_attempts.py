"""Poison events: how many tries an event gets, and which errors blame the event. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
import pytest

from projections.attempts import Attempts
from projections.batch import HandlerFailure, is_poison
from schemas.codec import AvroCodec
from streams.kafka.dead_letters import dead_letter


def test_an_event_is_given_up_on_at_its_third_try() -> None:
    attempts = Attempts(limit=3)
    tries = []
    for _ in range(3):
        tries.append(attempts.last_try((0, 7)))
        attempts.failed([(0, 7)])
    assert tries == [False, False, True]
    assert attempts.tries((0, 7)) == 3 and attempts.retrying()
    assert not attempts.last_try((0, 8)) and not attempts.last_try((1, 7))


def test_a_committed_checkpoint_forgets_the_events_it_passed() -> None:
    attempts = Attempts(limit=2)
    attempts.failed([(0, 7), (1, 3)])
    attempts.committed({0: 7, 1: 4})  # partition 0 stopped short of its failed event
    assert attempts.retrying() and attempts.tries((0, 7)) == 1 and attempts.tries((1, 3)) == 0
    attempts.committed({0: 8})
    assert not attempts.retrying()


@pytest.mark.parametrize(
    ("error", "poison"),
    [
        (KeyError("email"), True),  # a handler's own bug on this event
        (psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"), True),
        (psycopg.errors.UntranslatableCharacter("unsupported Unicode escape sequence"), True),
        (psycopg.errors.NotNullViolation("null value in column"), True),
        (psycopg.OperationalError("connection lost"), False),  # every event would fail
        (psycopg.errors.UndefinedColumn("column does not exist"), False),
    ],
)
def test_only_the_events_own_failures_are_poison(error: Exception, poison: bool) -> None:
    assert is_poison(error) is poison


@dataclass(frozen=True)
class Message:
    def topic(self) -> str:
        return "t.events"

    def partition(self) -> int:
        return 1

    def offset(self) -> int:
        return 42

    def key(self) -> bytes:
        return b"u3"

    def value(self) -> bytes:
        return b"the event, whole"


def test_a_poison_event_is_dead_lettered_in_the_one_dead_letter_format() -> None:
    codec, at = AvroCodec(), datetime(2025, 1, 1, tzinfo=UTC)
    failure = HandlerFailure("projection users failed on user.registered: DataError: NUL")
    schema, letter = codec.decode(dead_letter(codec, Message(), failure, "projection.users", at))
    assert schema.name == "dead_letter"
    assert letter == {
        "source_topic": "t.events", "source_partition": 1, "source_offset": 42,
        "source_key": b"u3", "payload": b"the event, whole", "reason": "handler_failed",
        "detail": failure.detail, "consumer": "projection.users", "failed_at": at,
    }  # fmt: skip
