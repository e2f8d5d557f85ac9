"""Events of a channel's circuit breaker, mirroring the `channel.circuit_*` Avro schemas.

The aggregate is the channel (aggregate_type "channel", aggregate_id e.g. "push").
Times are epoch milliseconds (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class ChannelCircuitOpened:
    TYPE: ClassVar[str] = "channel.circuit_opened"
    consecutive_failures: int
    reopen_at: int


@dataclass(frozen=True)
class ChannelCircuitHalfOpened:
    TYPE: ClassVar[str] = "channel.circuit_half_opened"


@dataclass(frozen=True)
class ChannelCircuitProbeStarted:
    TYPE: ClassVar[str] = "channel.circuit_probe_started"
    expires_at: int


@dataclass(frozen=True)
class ChannelCircuitClosed:
    TYPE: ClassVar[str] = "channel.circuit_closed"


CircuitEvent = (
    ChannelCircuitOpened
    | ChannelCircuitHalfOpened
    | ChannelCircuitProbeStarted
    | ChannelCircuitClosed
)
