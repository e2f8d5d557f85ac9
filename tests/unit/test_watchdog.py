"""The watchdog behind /healthz and /readyz, its enforcer, and the consumer progress check."""

from __future__ import annotations

import json

import httpx
import pytest
from confluent_kafka import KafkaError

from streams.kafka.polling import is_fatal
from streams.kafka.progress import ProgressCheck
from streams.process.health import HealthServer
from streams.process.watchdog import EXIT_WEDGED, Enforcer, Watchdog


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_loop_that_stops_polling_fails_liveness_after_the_bound(clock: Clock) -> None:
    watchdog = Watchdog(30, clock=clock)
    poll = watchdog.heartbeat("poll loop")
    clock.now += 29
    poll.beat()
    clock.now += 30
    assert watchdog.liveness().ok
    clock.now += 0.5
    assert watchdog.liveness().problems == ("poll loop has not polled for 30s",)
    assert watchdog.readiness().problems == ("poll loop has not polled for 30s",)
    poll.beat()
    assert watchdog.liveness().ok


def test_every_loop_counts_and_a_retired_one_no_longer_does(clock: Clock) -> None:
    watchdog = Watchdog(10, clock=clock)
    first, second = watchdog.heartbeat("a"), watchdog.heartbeat("b")
    assert watchdog.heartbeat("a") is first
    clock.now += 11
    first.beat()
    assert watchdog.liveness().problems == ("b has not polled for 11s",)
    watchdog.retire(second)
    assert watchdog.liveness().ok


def test_a_loop_waiting_on_purpose_is_excused_and_must_beat_once_busy(clock: Clock) -> None:
    watchdog = Watchdog(10, clock=clock)
    agent = watchdog.heartbeat("agent")
    with agent.waiting():
        clock.now += 100
        assert watchdog.liveness().ok
    clock.now += 10
    assert watchdog.liveness().ok
    agent.idle()
    clock.now += 100
    assert watchdog.liveness().ok
    agent.busy()
    clock.now += 10.5
    assert not watchdog.liveness().ok


def test_a_fatal_error_fails_both_for_good_and_keeps_its_first_reason(clock: Clock) -> None:
    watchdog = Watchdog(10, clock=clock)
    watchdog.heartbeat("loop")
    watchdog.fail("fenced")
    watchdog.fail("later")
    assert watchdog.fatal == "fenced"
    assert watchdog.liveness().problems == ("fatal: fenced",)
    assert watchdog.readiness().problems == ("fatal: fenced",)


def test_catching_up_is_not_ready_excuses_loops_and_is_bounded(clock: Clock) -> None:
    watchdog = Watchdog(10, catch_up_limit_s=300, clock=clock)
    loop = watchdog.heartbeat("poll loop")
    with watchdog.catching_up("rebuilding 6 partitions"):
        clock.now += 200
        assert watchdog.liveness().ok
        assert watchdog.readiness().problems == ("catching up: rebuilding 6 partitions",)
        clock.now += 101
        assert watchdog.liveness().problems == ("catch-up rebuilding 6 partitions running 301s",)
    assert watchdog.readiness().ok  # the loops were blocked by the catch-up: fresh again
    clock.now += 10.5
    assert watchdog.liveness().problems == ("poll loop has not polled for 10s",)
    loop.beat()
    assert watchdog.liveness().ok


def test_readiness_fails_while_a_serving_condition_is_false(clock: Clock) -> None:
    watchdog = Watchdog(10, clock=clock)
    partitions: set[int] = set()
    watchdog.require("no partitions assigned", lambda: bool(partitions))
    assert watchdog.liveness().ok
    assert watchdog.readiness().problems == ("no partitions assigned",)
    partitions.add(3)
    assert watchdog.readiness().ok


class Exits:
    def __init__(self) -> None:
        self.codes: list[int] = []

    def __call__(self, code: int) -> None:
        self.codes.append(code)


def test_the_enforcer_exits_once_liveness_failed_for_exit_after(clock: Clock) -> None:
    watchdog = Watchdog(10, clock=clock)
    loop = watchdog.heartbeat("loop")
    exits = Exits()
    enforcer = Enforcer(watchdog, 30, clock=clock, exit=exits)
    clock.now += 11
    assert not enforcer.check()  # failing from now
    clock.now += 29
    assert not enforcer.check()
    loop.beat()
    assert not enforcer.check()  # healthy again: the count starts over
    clock.now += 11
    assert not enforcer.check()
    clock.now += 30
    assert enforcer.check()
    assert exits.codes == [EXIT_WEDGED]


def test_the_enforcer_only_reports_a_stall_when_told_never_to_exit(clock: Clock) -> None:
    watchdog = Watchdog(10, clock=clock)
    watchdog.heartbeat("loop")
    exits = Exits()
    enforcer = Enforcer(watchdog, None, clock=clock, exit=exits)
    clock.now += 11
    enforcer.check()
    clock.now += 10_000
    assert not enforcer.check() and exits.codes == []


def test_the_enforcer_ends_a_process_that_did_not_exit_on_its_fatal_error(clock: Clock) -> None:
    watchdog = Watchdog(10, clock=clock)
    exits = Exits()
    enforcer = Enforcer(watchdog, None, fatal_grace_s=20, clock=clock, exit=exits)
    watchdog.fail("fenced by a newer instance")
    assert not enforcer.check()
    clock.now += 19
    assert not enforcer.check()
    clock.now += 1
    assert enforcer.check() and exits.codes == [EXIT_WEDGED]


def test_health_endpoints_answer_503_with_the_problems() -> None:
    watchdog = Watchdog(10)
    assigned: list[int] = []
    watchdog.require("no partitions assigned", lambda: bool(assigned))
    server = HealthServer("127.0.0.1", 0, watchdog).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok", "problems": []}
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 503
        assert json.loads(ready.content) == {
            "status": "not ready",
            "problems": ["no partitions assigned"],
        }
        assigned.append(0)
        assert httpx.get(f"{base}/readyz").status_code == 200
        watchdog.fail("fenced")
        live = httpx.get(f"{base}/healthz")
        assert (live.status_code, live.json()["status"]) == (503, "failing")
        assert live.json()["problems"] == ["fatal: fenced"]
    finally:
        server.stop()


def test_fatal_events_of_a_consumer_count_as_fatal() -> None:
    # What poll() hands over when a static member was fenced: code _FATAL, fatal() False.
    event = KafkaError(KafkaError._FATAL, "Fatal error: Static consumer fenced")
    assert not event.fatal() and is_fatal(event)
    assert is_fatal(KafkaError(KafkaError._FENCED, "fenced", fatal=True))
    assert not is_fatal(KafkaError(KafkaError._TRANSPORT, "broker down"))


def test_progress_is_judged_once_per_bound_without_messages(clock: Clock) -> None:
    check: ProgressCheck[int] = ProgressCheck(30, clock=clock)
    clock.now += 29
    assert not check.due()
    check.advanced()
    clock.now += 29.9
    assert not check.due()
    clock.now += 0.1
    assert check.due()
    assert not check.stalled({0: 10}, {0: (0, 11)})  # a commit marker is all that is left
    assert not check.due()  # judged: the next judgment is a period away


def test_a_consumer_behind_the_end_is_stalled_until_it_catches_up(clock: Clock) -> None:
    check: ProgressCheck[int] = ProgressCheck(30, clock=clock)
    assert check.stalled({0: 10, 1: 5}, {0: (0, 11), 1: (0, 40)})
    clock.now += 30
    # A fresh consumer that receives nothing, with the end where it was: an aborted
    # transaction at the end, never delivered, not a stall.
    assert not check.stalled({0: 10, 1: 5}, {0: (0, 11), 1: (0, 40)})
    clock.now += 30
    assert check.stalled({0: 10, 1: 5}, {0: (0, 11), 1: (0, 41)})  # more came: a stall


def test_a_partition_without_a_position_starts_at_its_first_offset(clock: Clock) -> None:
    check: ProgressCheck[int] = ProgressCheck(30, clock=clock)
    assert not check.stalled({}, {0: (7, 7), 1: (3, 4)})
    assert check.stalled({}, {0: (7, 9)})
