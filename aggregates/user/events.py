"""Events of the user aggregate, mirroring the `user.*` Avro schemas field for field.

`ChannelAddress` and `QuietHours` are nested records of `user.preferences_set`;
commands and state reuse them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class ChannelAddress:
    channel: str
    address: str
    enabled: bool = True


@dataclass(frozen=True)
class QuietHours:
    start: str
    end: str
    timezone: str


@dataclass(frozen=True)
class UserRegistered:
    TYPE: ClassVar[str] = "user.registered"
    email: str
    name: str
    locale: str | None = None


@dataclass(frozen=True)
class UserProfileUpdated:
    """Only the fields that changed are set; the others are None."""

    TYPE: ClassVar[str] = "user.profile_updated"
    name: str | None
    email: str | None


@dataclass(frozen=True)
class UserPreferencesSet:
    TYPE: ClassVar[str] = "user.preferences_set"
    channels: tuple[ChannelAddress, ...]
    quiet_hours: QuietHours | None = None


@dataclass(frozen=True)
class UserDeactivated:
    TYPE: ClassVar[str] = "user.deactivated"
    reason: str | None = None


UserEvent = UserRegistered | UserProfileUpdated | UserPreferencesSet | UserDeactivated
