"""The user aggregate as a pure decider: `decide(state, command)` and `evolve(state, event)`."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import assert_never

from aggregates.channels import CHANNELS
from aggregates.errors import DomainError
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
from aggregates.user.state import Preferences, UserState, initial_state

__all__ = ["decide", "evolve", "initial_state"]

MAX_NAME_LENGTH = 200
MAX_EMAIL_LENGTH = 254  # RFC 5321's limit on a forward path

_E164 = re.compile(r"\+[1-9]\d{6,14}")
_URL = re.compile(r"https?://[^\s/?#]+(?:[/?#]\S*)?")
_HH_MM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")


def decide(state: UserState, command: UserCommand) -> list[UserEvent]:
    match command:
        case RegisterUser():
            return _register(state, command)
        case UpdateUserProfile():
            _require_active(state)
            return _update_profile(state, command)
        case SetNotificationPreferences():
            _require_active(state)
            return _set_preferences(command)
        case DeactivateUser():
            return _deactivate(state, command)
        case _:
            assert_never(command)


def evolve(state: UserState, event: UserEvent) -> UserState:
    match event:
        case UserRegistered():
            return replace(
                state, registered=True, email=event.email, name=event.name, locale=event.locale
            )
        case UserProfileUpdated():
            return replace(
                state,
                name=state.name if event.name is None else event.name,
                email=state.email if event.email is None else event.email,
            )
        case UserPreferencesSet():
            preferences = Preferences(channels=event.channels, quiet_hours=event.quiet_hours)
            return replace(state, preferences=preferences)
        case UserDeactivated():
            return replace(state, deactivated=True)
        case _:
            assert_never(event)


def _require_active(state: UserState) -> None:
    if not state.registered:
        raise DomainError.not_found("user.not_found", "user is not registered")
    if state.deactivated:
        raise DomainError.conflict("user.deactivated", "user is deactivated")


def _register(state: UserState, command: RegisterUser) -> list[UserEvent]:
    if state.registered:
        raise DomainError.conflict("user.already_registered", "user is already registered")
    _check_email(command.email)
    _check_name(command.name)
    return [UserRegistered(email=command.email, name=command.name, locale=command.locale)]


def _update_profile(state: UserState, command: UpdateUserProfile) -> list[UserEvent]:
    if command.name is None and command.email is None:
        raise DomainError.invalid("user.empty_update", "give a name, an email or both")
    if command.name is not None:
        _check_name(command.name)
    if command.email is not None:
        _check_email(command.email)
    name = None if command.name == state.name else command.name
    email = None if command.email == state.email else command.email
    if name is None and email is None:
        return []
    return [UserProfileUpdated(name=name, email=email)]


def _set_preferences(command: SetNotificationPreferences) -> list[UserEvent]:
    seen: set[str] = set()
    for entry in command.channels:
        _check_channel(entry)
        if entry.channel in seen:
            raise DomainError.invalid(
                "user.duplicate_channel", f"channel {entry.channel!r} is given more than once"
            )
        seen.add(entry.channel)
    if command.quiet_hours is not None:
        _check_quiet_hours(command.quiet_hours)
    return [UserPreferencesSet(channels=command.channels, quiet_hours=command.quiet_hours)]


def _deactivate(state: UserState, command: DeactivateUser) -> list[UserEvent]:
    if state.deactivated:
        raise DomainError.conflict("user.already_deactivated", "user is already deactivated")
    _require_active(state)
    return [UserDeactivated(reason=command.reason)]


def is_email(text: str) -> bool:
    """local@domain.tld in one linear pass: no @ or blank in the parts, a dot inside the domain.

    A regular expression with two open-ended parts around the dot backtracks quadratically
    on a long domain without a match, which would stall a partition.
    """
    local, at, domain = text.partition("@")
    if not at or len(text) > MAX_EMAIL_LENGTH or not local or "@" in domain:
        return False
    return "." in domain[1:-1] and not any(c.isspace() for c in text)


def _check_email(email: str) -> None:
    if not is_email(email):
        raise DomainError.invalid("user.invalid_email", f"{email!r} is not an email address")


def _check_name(name: str) -> None:
    if not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise DomainError.invalid(
            "user.invalid_name", f"name must be 1 to {MAX_NAME_LENGTH} non-blank characters"
        )


def _check_channel(entry: ChannelAddress) -> None:
    if entry.channel not in CHANNELS:
        raise DomainError.invalid(
            "user.invalid_channel",
            f"channel {entry.channel!r} is not one of {', '.join(sorted(CHANNELS))}",
        )
    if not _address_is_valid(entry.channel, entry.address):
        raise DomainError.invalid(
            "user.invalid_address",
            f"{entry.address!r} is not a valid {entry.channel} address",
        )


def _address_is_valid(channel: str, address: str) -> bool:
    match channel:
        case "email":
            return is_email(address)
        case "sms":
            return _E164.fullmatch(address) is not None
        case "slack" | "discord" | "webhook":
            return _URL.fullmatch(address) is not None
        case "push":
            return bool(address.strip())
        case _:
            return False


def _check_quiet_hours(quiet_hours: QuietHours) -> None:
    times_ok = all(_HH_MM.fullmatch(t) for t in (quiet_hours.start, quiet_hours.end))
    if not times_ok or not quiet_hours.timezone.strip():
        raise DomainError.invalid(
            "user.invalid_quiet_hours",
            "quiet hours need HH:MM start and end (00:00-23:59) and a timezone",
        )
