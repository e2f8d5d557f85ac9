"""Typed delivery configuration (built by infra settings from `NEXUS_` variables)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from aggregates.channels import Channel

SmtpMode = Literal["insecure", "starttls", "ssl"]

DEFAULT_TIMEOUTS: dict[Channel, float] = {
    "email": 15.0,
    "sms": 10.0,
    "push": 5.0,
    "slack": 5.0,
    "discord": 5.0,
    "webhook": 5.0,
}


@dataclass(frozen=True)
class SmtpConfig:
    """SMTP relay for email; `insecure` is plain SMTP (tests, local relays only)."""

    host: str
    port: int
    from_addr: str
    user: str | None = None
    password: str | None = None
    mode: SmtpMode = "starttls"


@dataclass(frozen=True)
class NtfyConfig:
    """The ntfy server push notifications go to; the address is the topic."""

    server: str = "https://ntfy.sh"


@dataclass(frozen=True)
class TwilioConfig:
    """SMS goes through Twilio (apprise `twilio://SID:TOKEN@FROM/TO`)."""

    account_sid: str
    auth_token: str
    from_number: str


@dataclass(frozen=True)
class DeliveryConfig:
    """Everything the delivery adapter needs; a channel without config fails non-retryably."""

    smtp: SmtpConfig | None = None
    ntfy: NtfyConfig = field(default_factory=NtfyConfig)
    twilio: TwilioConfig | None = None
    timeouts: dict[Channel, float] = field(default_factory=lambda: dict(DEFAULT_TIMEOUTS))
    allow_list: tuple[str, ...] = ()
    user_agent: str = "nexus-notifications/0.1"
