"""Commands accepted by the user aggregate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from aggregates.user.events import ChannelAddress, QuietHours


@dataclass(frozen=True)
class RegisterUser:
    NAME: ClassVar[str] = "RegisterUser"
    email: str
    name: str
    locale: str | None = None


@dataclass(frozen=True)
class UpdateUserProfile:
    NAME: ClassVar[str] = "UpdateUserProfile"
    name: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class SetNotificationPreferences:
    NAME: ClassVar[str] = "SetNotificationPreferences"
    channels: tuple[ChannelAddress, ...]
    quiet_hours: QuietHours | None = None


@dataclass(frozen=True)
class DeactivateUser:
    NAME: ClassVar[str] = "DeactivateUser"
    reason: str | None = None


UserCommand = RegisterUser | UpdateUserProfile | SetNotificationPreferences | DeactivateUser
