"""Poison events: how many tries an event gets, and which errors blame the event. No I/O."""

from __future__ import annotations

import psycopg
import pytest

from projections.attempts import MAX_ATTEMPTS, Attempts
from projections.batch import is_poison


def test_an_event_is_given_up_on_at_its_third_try() -> None:
    attempts = Attempts()
    tries = []
    for _ in range(MAX_ATTEMPTS):
        tries.append(attempts.last_try((0, 7)))
        attempts.failed([(0, 7)])
    assert MAX_ATTEMPTS == 3 and tries == [False, False, True]
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
