"""State of one user, folded from its events."""

from __future__ import annotations

from dataclasses import dataclass

from aggregates.user.events import ChannelAddress, QuietHours


@dataclass(frozen=True)
class Preferences:
    channels: tuple[ChannelAddress, ...] = ()
    quiet_hours: QuietHours | None = None


@dataclass(frozen=True)
class UserState:
    registered: bool = False
    deactivated: bool = False
    email: str = ""
    name: str = ""
    locale: str | None = None
    preferences: Preferences = Preferences()


initial_state = UserState()
