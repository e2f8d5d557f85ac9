"""The `Recipients` port: who a notification goes to, and where each channel reaches them."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from aggregates.user.events import ChannelAddress, QuietHours


@dataclass(frozen=True)
class Recipient:
    user_id: str
    email: str
    active: bool
    channels: tuple[ChannelAddress, ...] = ()
    quiet_hours: QuietHours | None = None

    def preferences(self) -> tuple[ChannelAddress, ...]:
        """The user's channels; one who never chose any is reached by email at sign-up address.

        A deactivated user is reached on no channel at all.
        """
        if not self.active:
            return ()
        return self.channels or (ChannelAddress(channel="email", address=self.email),)

    def address(self, channel: str) -> str | None:
        return next((p.address for p in self.preferences() if p.channel == channel), None)


class Recipients(Protocol):
    def find(self, user_ids: Collection[str]) -> dict[str, Recipient]:
        """The known users among `user_ids`, by id."""
        ...
