"""Given events / when command / then events (or error) for the user decider."""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce

import pytest

from aggregates.errors import DomainError
from aggregates.registry import USER
from aggregates.user.commands import (
    DeactivateUser,
    RegisterUser,
    SetNotificationPreferences,
    UpdateUserProfile,
    UserCommand,
)
from aggregates.user.events import (
    ChannelAddress,
    QuietHours,
    UserDeactivated,
    UserEvent,
    UserPreferencesSet,
    UserProfileUpdated,
    UserRegistered,
)
from aggregates.user.state import Preferences

REGISTERED = UserRegistered(email="ada@example.com", name="Ada", locale="en-GB")
DEACTIVATED = UserDeactivated(reason="left")
EMAIL = ChannelAddress(channel="email", address="ada@example.com")
SMS = ChannelAddress(channel="sms", address="+447911123456", enabled=False)
QUIET = QuietHours(start="22:00", end="07:30", timezone="Europe/London")


def decide_given(given: Sequence[UserEvent], command: UserCommand) -> list[UserEvent]:
    state = reduce(USER.evolve, given, USER.initial_state)
    return USER.decide(state, command)


def error_given(given: Sequence[UserEvent], command: UserCommand) -> DomainError:
    with pytest.raises(DomainError) as info:
        decide_given(given, command)
    return info.value


def preferences(*channels: ChannelAddress, quiet: QuietHours | None = None) -> UserCommand:
    return SetNotificationPreferences(channels=channels, quiet_hours=quiet)


def test_register_new_user() -> None:
    command = RegisterUser(email="ada@example.com", name="Ada", locale="en-GB")
    assert decide_given([], command) == [REGISTERED]


def test_register_without_locale() -> None:
    command = RegisterUser(email="ada@example.com", name="Ada")
    assert decide_given([], command) == [UserRegistered(email="ada@example.com", name="Ada")]


def test_update_profile_emits_only_changed_fields() -> None:
    command = UpdateUserProfile(name="Ada", email="ada@lovelace.org")
    assert decide_given([REGISTERED], command) == [
        UserProfileUpdated(name=None, email="ada@lovelace.org")
    ]


def test_update_profile_with_both_fields_changed() -> None:
    command = UpdateUserProfile(name="Ada L.", email="ada@lovelace.org")
    assert decide_given([REGISTERED], command) == [
        UserProfileUpdated(name="Ada L.", email="ada@lovelace.org")
    ]


@pytest.mark.parametrize(
    "command",
    [
        UpdateUserProfile(name="Ada"),
        UpdateUserProfile(email="ada@example.com"),
        UpdateUserProfile(name="Ada", email="ada@example.com"),
    ],
)
def test_update_profile_to_current_values_is_a_no_op(command: UserCommand) -> None:
    assert decide_given([REGISTERED], command) == []


def test_update_profile_compares_with_the_latest_values() -> None:
    given: list[UserEvent] = [REGISTERED, UserProfileUpdated(name="Ada L.", email=None)]
    assert decide_given(given, UpdateUserProfile(name="Ada L.")) == []
    assert decide_given(given, UpdateUserProfile(name="Ada")) == [
        UserProfileUpdated(name="Ada", email=None)
    ]


def test_set_preferences() -> None:
    channels = (
        EMAIL,
        SMS,
        ChannelAddress(channel="push", address="device-token-1"),
        ChannelAddress(channel="slack", address="https://hooks.slack.com/services/T0/B0/x"),
        ChannelAddress(channel="discord", address="https://discord.com/api/webhooks/1/a"),
        ChannelAddress(channel="webhook", address="http://localhost:8080/hook?x=1"),
    )
    assert decide_given([REGISTERED], preferences(*channels, quiet=QUIET)) == [
        UserPreferencesSet(channels=channels, quiet_hours=QUIET)
    ]


def test_set_no_channels_clears_them() -> None:
    assert decide_given([REGISTERED], preferences()) == [UserPreferencesSet(channels=())]


@pytest.mark.parametrize("start, end", [("00:00", "23:59"), ("23:59", "00:00"), ("09:05", "19:45")])
def test_quiet_hours_bounds(start: str, end: str) -> None:
    quiet = QuietHours(start=start, end=end, timezone="UTC")
    assert decide_given([REGISTERED], preferences(quiet=quiet)) == [
        UserPreferencesSet(channels=(), quiet_hours=quiet)
    ]


def test_deactivate() -> None:
    assert decide_given([REGISTERED], DeactivateUser(reason="left")) == [DEACTIVATED]
    assert decide_given([REGISTERED], DeactivateUser()) == [UserDeactivated()]


def test_evolve_folds_every_event() -> None:
    given: list[UserEvent] = [
        REGISTERED,
        UserProfileUpdated(name=None, email="ada@lovelace.org"),
        UserProfileUpdated(name="Ada L.", email=None),
        UserPreferencesSet(channels=(EMAIL,), quiet_hours=QUIET),
        DEACTIVATED,
    ]
    state = reduce(USER.evolve, given, USER.initial_state)
    assert state.registered and state.deactivated
    assert (state.email, state.name, state.locale) == ("ada@lovelace.org", "Ada L.", "en-GB")
    assert state.preferences == Preferences(channels=(EMAIL,), quiet_hours=QUIET)


LIFECYCLE_ERRORS = [
    ([REGISTERED], RegisterUser(email="x@example.com", name="X"), "user.already_registered"),
    ([REGISTERED, DEACTIVATED], RegisterUser(email="x@y.io", name="X"), "user.already_registered"),
    ([], UpdateUserProfile(name="X"), "user.not_found"),
    ([], preferences(), "user.not_found"),
    ([], DeactivateUser(), "user.not_found"),
    ([REGISTERED, DEACTIVATED], UpdateUserProfile(name="X"), "user.deactivated"),
    ([REGISTERED, DEACTIVATED], preferences(), "user.deactivated"),
    ([REGISTERED, DEACTIVATED], DeactivateUser(), "user.already_deactivated"),
]


@pytest.mark.parametrize("given, command, code", LIFECYCLE_ERRORS)
def test_lifecycle_errors(given: list[UserEvent], command: UserCommand, code: str) -> None:
    error = error_given(given, command)
    assert error.code == code
    assert error.kind == ("not_found" if code == "user.not_found" else "conflict")


BAD_EMAILS = ["", "ada", "ada@", "@example.com", "ada@example", "a da@example.com", "a@b@c.com"]
BAD_NAMES = ["", "   ", "x" * 201]


@pytest.mark.parametrize("email", BAD_EMAILS)
def test_invalid_email(email: str) -> None:
    assert error_given([], RegisterUser(email=email, name="Ada")).code == "user.invalid_email"
    update = UpdateUserProfile(email=email)
    assert error_given([REGISTERED], update).code == "user.invalid_email"


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_name(name: str) -> None:
    command = RegisterUser(email="ada@example.com", name=name)
    assert error_given([], command).code == "user.invalid_name"
    assert error_given([REGISTERED], UpdateUserProfile(name=name)).code == "user.invalid_name"


def test_name_of_200_characters_is_allowed() -> None:
    name = "x" * 200
    assert decide_given([REGISTERED], UpdateUserProfile(name=name)) == [
        UserProfileUpdated(name=name, email=None)
    ]


def test_empty_update() -> None:
    error = error_given([REGISTERED], UpdateUserProfile())
    assert (error.code, error.kind) == ("user.empty_update", "invalid")


INVALID_PREFERENCES = [
    (preferences(ChannelAddress(channel="fax", address="123")), "user.invalid_channel"),
    (preferences(ChannelAddress(channel="Email", address="a@b.io")), "user.invalid_channel"),
    (preferences(EMAIL, SMS, EMAIL), "user.duplicate_channel"),
    (preferences(EMAIL, ChannelAddress("email", "ada@x.io", False)), "user.duplicate_channel"),
]
BAD_ADDRESSES = [
    ("email", "not-an-email"),
    ("sms", "07911123456"),
    ("sms", "+0123456789"),
    ("sms", "+12345"),
    ("sms", "+1234567890123456"),
    ("sms", "+44 7911 123456"),
    ("push", ""),
    ("push", "   "),
    ("slack", "hooks.slack.com/services/x"),
    ("slack", "https://"),
    ("discord", "ftp://discord.com/x"),
    ("webhook", "https:///path"),
    ("webhook", "https://exa mple.com/"),
]
BAD_QUIET_HOURS = [
    QuietHours(start="24:00", end="07:00", timezone="UTC"),
    QuietHours(start="22:60", end="07:00", timezone="UTC"),
    QuietHours(start="7:00", end="22:00", timezone="UTC"),
    QuietHours(start="22:00", end="0700", timezone="UTC"),
    QuietHours(start="22:00", end="07:00", timezone=""),
    QuietHours(start="22:00", end="07:00", timezone="  "),
]


@pytest.mark.parametrize("command, code", INVALID_PREFERENCES)
def test_invalid_channels(command: UserCommand, code: str) -> None:
    error = error_given([REGISTERED], command)
    assert (error.code, error.kind) == (code, "invalid")


@pytest.mark.parametrize("channel, address", BAD_ADDRESSES)
def test_invalid_address(channel: str, address: str) -> None:
    command = preferences(ChannelAddress(channel=channel, address=address))
    assert error_given([REGISTERED], command).code == "user.invalid_address"


@pytest.mark.parametrize("quiet", BAD_QUIET_HOURS)
def test_invalid_quiet_hours(quiet: QuietHours) -> None:
    assert error_given([REGISTERED], preferences(quiet=quiet)).code == "user.invalid_quiet_hours"


def test_email_check_is_linear_on_a_pathological_address() -> None:
    import time

    from aggregates.user.decider import is_email

    started = time.perf_counter()
    assert not is_email("a@" + "." * 40_000 + " ")
    assert time.perf_counter() - started < 0.05


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("ada@example.com", True),
        ("a@b..c", True),
        ("a@..c", True),
        ("a@b.c.", True),
        ("a@b.", False),
        ("a@.b", False),
        ("a@b", False),
        ("@b.c", False),
        ("a@b@c.d", False),
        ("a b@c.d", False),
        ("a@b.c\n", False),
        ("a@" + "b" * 250 + ".c", True),
        ("a@" + "b" * 251 + ".c", False),
    ],
)
def test_email_rule(text: str, valid: bool) -> None:
    from aggregates.user.decider import is_email

    assert is_email(text) is valid
