"""Given / when / then for the saga's rules: retries, fallback, deadline, opt-out, quiet hours."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from test_notification_saga import (
    HOUR,
    ID,
    START,
    STARTED,
    T0,
    failure,
    fold,
    history,
    reactions,
    rendered,
    then,
)

from aggregates.errors import DomainError
from aggregates.user.events import ChannelAddress, QuietHours
from sagas.notification.commands import DeliveryPolicy, FireTimer, StartAttempt, Timer
from sagas.notification.decider import decide
from sagas.notification.events import (
    NotificationAttemptFailed,
    NotificationAttemptStarted,
    NotificationDeferred,
    NotificationFellBack,
    NotificationGivenUp,
    NotificationRequested,
    NotificationResumed,
    NotificationRetryScheduled,
    Route,
)
from sagas.notification.policy import backoff_ms, quiet_hours_end, resolve_routes
from sagas.notification.state import initial_state


def ms(year: int, month: int, day: int, hour: int, minute: int = 0, tz: str = "UTC") -> int:
    """Epoch milliseconds of a wall-clock time in a time zone."""
    return int(datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(tz)).timestamp() * 1000)


# Retries and backoff


@pytest.mark.parametrize(
    ("attempt", "low", "high"), [(1, 500, 1_000), (2, 1_000, 2_000), (3, 2_000, 4_000)]
)
def test_backoff_is_exponential_within_equal_jitter_bounds(
    attempt: int, low: int, high: int
) -> None:
    assert backoff_ms(attempt, 0.0, 1_000, 60_000) == low
    assert low <= backoff_ms(attempt, 0.999999, 1_000, 60_000) < high


def test_backoff_is_capped() -> None:
    assert backoff_ms(30, 0.5, 1_000, 60_000) == 45_000


def test_jitter_outside_unit_interval_is_rejected() -> None:
    with pytest.raises(DomainError) as caught:
        backoff_ms(1, 1.0, 1_000, 60_000)
    assert caught.value.code == "notification.invalid_jitter"


def test_retryable_failure_schedules_retry_with_jitter_applied() -> None:
    new = then(STARTED, failure(1, at=T0 + 10, jitter=0.5))
    assert new == [
        NotificationAttemptFailed("push", 1, "503", True, T0 + 10, 0.5),
        NotificationRetryScheduled("push", 2, T0 + 10 + 750),
    ]
    assert reactions(STARTED, new) == [Timer(ID, T0 + 760, "retry", "push", 2)]


def test_retry_timer_starts_the_next_attempt_once() -> None:
    given = history(START, rendered(), StartAttempt(ID, "push", 1), failure(1))
    timer = Timer(ID, T0 + 500, "retry", "push", 2)
    new = then(given, FireTimer(timer, T0 + 501))
    assert new == [NotificationAttemptStarted("push", 2, f"{ID}/push/2")]
    assert then([*given, *new], FireTimer(timer, T0 + 502)) == []


def test_stale_retry_timer_does_nothing() -> None:
    given = history(START, rendered(), StartAttempt(ID, "push", 1), failure(1))
    assert then(given, FireTimer(Timer(ID, T0, "retry", "push", 7), T0 + 1)) == []


def test_retries_exhausted_fall_back_to_next_channel() -> None:
    given = history(
        START,
        rendered(),
        StartAttempt(ID, "push", 1),
        failure(1),
        FireTimer(Timer(ID, T0 + 500, "retry", "push", 2), T0 + 500),
        failure(2, at=T0 + 600),
        FireTimer(Timer(ID, T0 + 1_600, "retry", "push", 3), T0 + 1_600),
    )
    assert then(given, failure(3, at=T0 + 1_700))[-1] == (
        NotificationFellBack("push", "email", "retries_exhausted")
    )


def test_non_retryable_failure_falls_back_at_once() -> None:
    assert then(STARTED, failure(1, retryable=False))[-1] == (
        NotificationFellBack("push", "email", "not_retryable")
    )


def test_retry_past_the_deadline_falls_back_instead() -> None:
    assert then(STARTED, failure(1, at=T0 + HOUR - 100))[-1] == (
        NotificationFellBack("push", "email", "deadline_too_close")
    )


def test_failure_at_the_deadline_gives_up() -> None:
    assert then(STARTED, failure(1, at=T0 + HOUR))[-1] == NotificationGivenUp("deadline")


def test_end_of_the_fallback_chain_gives_up() -> None:
    given = history(
        START,
        rendered(),
        StartAttempt(ID, "push", 1),
        failure(1, retryable=False),
        StartAttempt(ID, "email", 1),
    )
    assert then(given, failure(1, retryable=False, channel="email"))[-1] == (
        NotificationGivenUp("email not_retryable: 503")
    )


def test_retry_timer_after_the_deadline_gives_up() -> None:
    given = history(START, rendered(), StartAttempt(ID, "push", 1), failure(1))
    fired = FireTimer(Timer(ID, T0 + 500, "retry", "push", 2), T0 + HOUR)
    assert then(given, fired) == [NotificationGivenUp("deadline")]


def test_single_attempt_policy_never_retries() -> None:
    once = replace(START, policy=DeliveryPolicy(max_attempts=1))
    given = history(once, rendered(), StartAttempt(ID, "push", 1))
    assert then(given, failure(1))[-1] == NotificationFellBack("push", "email", "retries_exhausted")


# Channels: preferences, opt-out, critical

PREFS = (
    ChannelAddress("push", "device-1"),
    ChannelAddress("sms", "+447911123456", enabled=False),
    ChannelAddress("email", "ada@example.com"),
)
FALLBACKS = DeliveryPolicy().fallbacks


def test_channels_default_to_enabled_preferences() -> None:
    routes = resolve_routes(None, PREFS, False, FALLBACKS)
    assert routes == (Route(("push",)), Route(("email",)))


def test_opted_out_channel_is_removed_from_request_and_fallbacks() -> None:
    assert resolve_routes(("sms", "push"), PREFS, False, FALLBACKS) == (Route(("push", "email")),)


def test_critical_template_bypasses_opt_out() -> None:
    routes = resolve_routes(("sms",), PREFS, True, FALLBACKS)
    assert routes == (Route(("sms", "email")),)
    assert resolve_routes(None, PREFS, True, FALLBACKS)[1] == Route(("sms",))


def test_channel_without_an_address_is_dropped() -> None:
    assert resolve_routes(("slack",), PREFS, True, FALLBACKS) == ()


def test_fallback_cycles_end() -> None:
    from sagas.notification.commands import Fallback

    loop = (Fallback("push", "sms"), Fallback("sms", "slack"), Fallback("slack", "sms"))
    assert resolve_routes(("push",), PREFS, False, loop) == (Route(("push",)),)


def test_request_with_every_channel_opted_out_gives_up() -> None:
    opted_out = tuple(replace(p, enabled=False) for p in PREFS)
    new = then([], replace(START, preferences=opted_out))
    assert new[-1] == NotificationGivenUp("no_channels")
    assert reactions([], new) == []


# Quiet hours

NIGHT_LONDON = QuietHours("22:00", "07:00", "Europe/London")


def test_inside_quiet_hours_across_midnight_ends_next_morning() -> None:
    now = ms(2026, 1, 5, 23, 30)
    assert quiet_hours_end(NIGHT_LONDON, now) == ms(2026, 1, 6, 7, 0)


def test_after_midnight_quiet_hours_end_the_same_morning() -> None:
    assert quiet_hours_end(NIGHT_LONDON, ms(2026, 1, 6, 3, 0)) == ms(2026, 1, 6, 7, 0)


def test_outside_quiet_hours_nothing_is_deferred() -> None:
    assert quiet_hours_end(NIGHT_LONDON, ms(2026, 1, 6, 7, 0)) is None
    assert quiet_hours_end(NIGHT_LONDON, ms(2026, 1, 5, 21, 59)) is None


def test_quiet_hours_are_read_in_the_users_time_zone() -> None:
    tokyo = QuietHours("22:00", "07:00", "Asia/Tokyo")
    now = ms(2026, 1, 5, 14, 0)  # 23:00 in Tokyo
    assert quiet_hours_end(tokyo, now) == ms(2026, 1, 6, 7, 0, tz="Asia/Tokyo")
    assert quiet_hours_end(tokyo, now) == ms(2026, 1, 5, 22, 0)


def test_quiet_hours_across_a_dst_change_end_at_local_time() -> None:
    new_york = QuietHours("22:00", "07:00", "America/New_York")
    now = ms(2026, 3, 7, 23, 0, tz="America/New_York")  # DST starts 8 March 02:00
    assert quiet_hours_end(new_york, now) == ms(2026, 3, 8, 11, 0)  # 07:00 EDT


def test_daytime_quiet_hours_and_empty_quiet_hours() -> None:
    lunch = QuietHours("12:00", "13:00", "UTC")
    assert quiet_hours_end(lunch, ms(2026, 1, 5, 12, 30)) == ms(2026, 1, 5, 13, 0)
    assert quiet_hours_end(QuietHours("09:00", "09:00", "UTC"), ms(2026, 1, 5, 9, 0)) is None


def test_unknown_time_zone_is_invalid() -> None:
    with pytest.raises(DomainError) as caught:
        quiet_hours_end(QuietHours("22:00", "07:00", "Mars/Olympus"), T0)
    assert caught.value.code == "notification.invalid_timezone"


def test_request_in_quiet_hours_is_deferred_with_a_timer() -> None:
    command = replace(START, requested_at=ms(2026, 1, 5, 23, 0), quiet_hours=NIGHT_LONDON)
    command = replace(command, deadline=command.requested_at + 12 * HOUR)
    new = then([], command)
    assert new[-1] == NotificationDeferred(ms(2026, 1, 6, 7, 0), "quiet_hours")
    outputs = reactions([], new)
    assert outputs[-1] == Timer(ID, ms(2026, 1, 6, 7, 0), "quiet_hours")


def test_deferred_notification_renders_but_waits_to_send() -> None:
    command = replace(START, requested_at=ms(2026, 1, 5, 23, 0), quiet_hours=NIGHT_LONDON)
    command = replace(command, deadline=command.requested_at + 12 * HOUR)
    given = history(command)
    assert reactions(given, then(given, rendered())) == []
    with pytest.raises(DomainError):
        then([*given, *then(given, rendered())], StartAttempt(ID, "push", 1))


def test_quiet_hours_timer_resumes_and_starts_the_first_attempt() -> None:
    command = replace(START, requested_at=ms(2026, 1, 5, 23, 0), quiet_hours=NIGHT_LONDON)
    command = replace(command, deadline=command.requested_at + 12 * HOUR)
    given = history(command, rendered())
    until = ms(2026, 1, 6, 7, 0)
    new = then(given, FireTimer(Timer(ID, until, "quiet_hours"), until))
    assert new == [NotificationResumed(until)]
    assert reactions(given, new) == [StartAttempt(ID, "push", 1)]
    assert then([*given, *new], FireTimer(Timer(ID, until, "quiet_hours"), until)) == []


def test_critical_notification_ignores_quiet_hours() -> None:
    command = replace(START, requested_at=ms(2026, 1, 5, 23, 0), quiet_hours=NIGHT_LONDON)
    command = replace(command, deadline=command.requested_at + HOUR, critical=True)
    [requested] = decide(initial_state, command)
    assert isinstance(requested, NotificationRequested)
    assert fold([requested]).status == "pending"
