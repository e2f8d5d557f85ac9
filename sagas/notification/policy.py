"""Pure rules of the saga: which channels to use, quiet hours and retry backoff.

zoneinfo reads the system's tz database, which is static data, so these stay pure.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aggregates.errors import DomainError
from aggregates.user.events import ChannelAddress, QuietHours
from sagas.notification.commands import Fallback
from sagas.notification.events import Route
from schemas.timestamps import epoch_ms, from_epoch_ms


def backoff_ms(attempt: int, jitter: float, base_delay_ms: int, max_delay_ms: int) -> int:
    """Delay after failed `attempt` (1-based): "equal jitter" on a capped exponential.

    With `cap = min(max_delay_ms, base_delay_ms * 2 ** (attempt - 1))` the delay lies in
    [cap / 2, cap): a floor keeps retries from bunching, the jitter spreads them out.
    """
    if not 0.0 <= jitter < 1.0:
        raise DomainError.invalid("notification.invalid_jitter", "jitter must be in [0, 1)")
    cap = min(max_delay_ms, base_delay_ms * (1 << max(attempt - 1, 0)))
    return cap // 2 + int(jitter * (cap - cap // 2))


def resolve_routes(
    requested: tuple[str, ...] | None,
    preferences: tuple[ChannelAddress, ...],
    critical: bool,
    fallbacks: tuple[Fallback, ...],
) -> tuple[Route, ...]:
    """Required channels with their fallback chains, minus opted-out and unknown channels.

    A channel is usable when the user has an address for it and has it enabled; critical
    templates bypass opt-out. Without a request, the user's usable channels are used.
    """
    usable = {p.channel for p in preferences if p.enabled or critical}
    wanted = requested if requested is not None else tuple(p.channel for p in preferences)
    primaries = tuple(dict.fromkeys(c for c in wanted if c in usable))
    return tuple(
        Route(chain=_chain(primary, primaries, usable, fallbacks)) for primary in primaries
    )


def _chain(
    primary: str, primaries: tuple[str, ...], usable: set[str], fallbacks: tuple[Fallback, ...]
) -> tuple[str, ...]:
    chain, seen = [primary], {primary}
    current: str | None = primary
    while current is not None:
        current = next((f.to_channel for f in fallbacks if f.from_channel == current), None)
        if current is None or current in seen:
            break
        seen.add(current)
        # A channel that is already required elsewhere is delivered there; skip past it.
        if current in usable and current not in primaries:
            chain.append(current)
    return tuple(chain)


def quiet_hours_end(quiet_hours: QuietHours, now_ms: int) -> int | None:
    """When the quiet hours around `now_ms` end (epoch ms), or None if `now_ms` is not in them.

    Quiet hours are [start, end) in the user's local time and may cross midnight;
    start == end means none.
    """
    zone = _zone(quiet_hours.timezone)
    local = from_epoch_ms(now_ms).astimezone(zone)
    start, end = _hh_mm(quiet_hours.start), _hh_mm(quiet_hours.end)
    now = local.time().replace(tzinfo=None)
    if start == end:
        return None
    if start < end:
        inside, end_day = start <= now < end, local.date()
    else:
        inside = now >= start or now < end
        end_day = local.date() + timedelta(days=1) if now >= start else local.date()
    if not inside:
        return None
    until = datetime.combine(end_day, end, tzinfo=zone)
    return epoch_ms(until)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise DomainError.invalid(
            "notification.invalid_timezone", f"unknown time zone {name!r}"
        ) from error


def _hh_mm(text: str) -> time:
    try:
        return time.fromisoformat(text)
    except ValueError as error:
        raise DomainError.invalid(
            "notification.invalid_quiet_hours", f"{text!r} is not HH:MM"
        ) from error
