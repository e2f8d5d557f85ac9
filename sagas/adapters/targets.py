"""SSRF guard for outbound HTTP targets (webhook, Slack, Discord, ntfy), run at send time.

A target passes when its scheme is http(s) and every address its host resolves to is public.
Private, loopback, link-local, site-local (`fec0::/10`), multicast, reserved, unspecified,
shared (CGNAT) and cloud metadata addresses are refused, also when spelled as
IPv4-mapped/6to4/NAT64 IPv6 or as a legacy integer host (`0x7f000001`, `2130706433`,
`017700000001`, `127.1`). A host name that is not a valid DNS name (an empty or over-long
label, characters outside letters, digits, `-` and `_` once IDNA-encoded) is refused for good:
no retry can fix it. An allow-list of `host:port` entries or CIDRs lets local sinks through
(tests, on-prem ntfy).

The guard does not follow redirects: senders must disable them. Webhooks connect to the
addresses checked here (`CheckedTarget.addresses`, see `pinned_transport`), so DNS cannot
answer differently for the connection (rebinding). apprise's channels (ntfy, Slack, Discord)
still resolve again when sending; their hosts come from configuration or are the providers'.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

ALLOWED_SCHEMES = frozenset({"http", "https"})
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LABEL = re.compile(r"[a-z0-9_-]{1,63}", re.IGNORECASE)
MAX_HOST_NAME = 253


class UnsafeTarget(ValueError):
    """A target the guard refuses; only a failed DNS lookup is worth retrying."""

    def __init__(self, url: str, reason: str, retryable: bool = False) -> None:
        super().__init__(f"refused target {url!r}: {reason}")
        self.url = url
        self.reason = reason
        self.retryable = retryable


@dataclass(frozen=True)
class CheckedTarget:
    """A target that passed the guard, with the addresses it was checked against."""

    url: str
    host: str
    port: int
    addresses: tuple[str, ...]


def resolve_with_getaddrinfo(host: str, port: int) -> list[str]:
    """Default resolver: every address `socket.getaddrinfo` returns for host:port."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]).split("%", 1)[0] for info in infos]


def parse_legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """inet_aton-style hosts (`0x7f000001`, `2130706433`, `0177.1`) as an address, else None."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers: list[int] = []
    for part in parts:
        try:
            if part.lower().startswith("0x"):
                numbers.append(int(part[2:], 16))
            elif len(part) > 1 and part.startswith("0"):
                numbers.append(int(part[1:], 8))
            else:
                numbers.append(int(part, 10))
        except ValueError:
            return None
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 256 ** (5 - len(numbers)):
        return None
    value = 0
    for n in leading:
        value = value << 8 | n
    return ipaddress.IPv4Address(value << 8 * (5 - len(numbers)) | last)


def literal_address(host: str) -> IPAddress | None:
    """The IP a host names literally (any spelling), or None for a DNS name."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return parse_legacy_ipv4(host)


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address carried inside an IPv4-mapped, 6to4 or NAT64 IPv6 address."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def blocked_reason(address: IPAddress) -> str | None:
    """Why `address` is not a public unicast address, or None when it is."""
    inner = embedded_ipv4(address)
    if inner is not None:
        reason = blocked_reason(inner)
        return f"{reason} (embedded in {address})" if reason else None
    checks = [
        (address in METADATA_ADDRESSES, "cloud metadata address"),
        (address.is_loopback, "loopback address"),
        (address.is_unspecified, "unspecified address"),
        (address.is_link_local, "link-local address"),
        (
            isinstance(address, ipaddress.IPv6Address) and address.is_site_local,
            "site-local address",
        ),
        (address.is_multicast, "multicast address"),
        (address.is_reserved, "reserved address"),
        (address.is_private, "private address"),
        (isinstance(address, ipaddress.IPv4Address) and address in _SHARED, "shared address"),
        (not address.is_global, "non-global address"),
    ]
    return next((f"{reason} {address}" for hit, reason in checks if hit), None)


@dataclass(frozen=True)
class AllowList:
    """Exceptions to the guard: exact `host:port` pairs and networks (CIDRs)."""

    endpoints: frozenset[tuple[str, int]] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        """Entries like `127.0.0.1:8080`, `[::1]:8080`, `sink.local:80` or `10.0.0.0/8`."""
        endpoints: set[tuple[str, int]] = set()
        networks: list[IPNetwork] = []
        for raw in (e.strip() for e in entries):
            if not raw:
                continue
            if "/" in raw:
                networks.append(ipaddress.ip_network(raw, strict=False))
                continue
            parsed = urlsplit(f"//{raw}")
            if parsed.hostname is None or parsed.port is None:
                raise ValueError(f"allow-list entry {raw!r} is neither host:port nor a CIDR")
            endpoints.add((_normal_host(parsed.hostname), parsed.port))
        return cls(frozenset(endpoints), tuple(networks))

    def permits_endpoint(self, host: str, port: int) -> bool:
        return (_normal_host(host), port) in self.endpoints

    def permits_address(self, address: IPAddress) -> bool:
        return any(address.version == n.version and address in n for n in self.networks)


def host_name_problem(host: str) -> str | None:
    """Why `host` is not a usable DNS name, or None; IDNA errors become a reason, not a raise."""
    try:
        encoded = host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        return f"malformed host name: {exc}"
    name = encoded[:-1] if encoded.endswith(".") else encoded
    if len(name) > MAX_HOST_NAME:
        return f"malformed host name: longer than {MAX_HOST_NAME} characters"
    if not all(_LABEL.fullmatch(label) for label in name.split(".")):
        return "malformed host name: a label is empty, too long or has characters DNS forbids"
    return None


def _normal_host(host: str) -> str:
    address = literal_address(host)
    return str(address) if address is not None else host.lower().rstrip(".")


@dataclass(frozen=True)
class TargetGuard:
    """Checks outbound URLs; inject `resolver` in tests, default is getaddrinfo."""

    allow: AllowList = field(default_factory=AllowList)
    resolver: Resolver = resolve_with_getaddrinfo

    def check(self, url: str) -> CheckedTarget:
        """The checked target, or UnsafeTarget explaining the refusal."""
        try:
            parsed = urlsplit(url)
            port = parsed.port
        except ValueError as exc:
            raise UnsafeTarget(url, f"unparsable URL: {exc}") from exc
        scheme = parsed.scheme.lower()
        if scheme not in ALLOWED_SCHEMES:
            raise UnsafeTarget(url, f"scheme {scheme or '(none)'!r} is not http(s)")
        if not parsed.hostname:
            raise UnsafeTarget(url, "no host")
        host = parsed.hostname
        port = port if port is not None else (443 if scheme == "https" else 80)
        if self.allow.permits_endpoint(host, port):
            return CheckedTarget(url, host, port, ())
        addresses = self._addresses(url, host, port)
        for address in addresses:
            reason = blocked_reason(address)
            if reason and not self.allow.permits_address(address):
                raise UnsafeTarget(url, reason)
        return CheckedTarget(url, host, port, tuple(str(a) for a in addresses))

    def _addresses(self, url: str, host: str, port: int) -> Sequence[IPAddress]:
        literal = literal_address(host)
        if literal is not None:
            return [literal]
        problem = host_name_problem(host)
        if problem is not None:
            raise UnsafeTarget(url, problem)
        try:
            resolved = self.resolver(host, port)
        except OSError as exc:
            raise UnsafeTarget(url, f"cannot resolve {host}: {exc}", retryable=True) from exc
        except ValueError as exc:  # UnicodeError (idna) and the like: no retry will help
            raise UnsafeTarget(url, f"malformed host name: {exc}") from exc
        addresses = [literal_address(a) for a in resolved]
        if not addresses or any(a is None for a in addresses):
            raise UnsafeTarget(url, f"{host} resolved to no usable address: {resolved}")
        return [a for a in addresses if a is not None]
