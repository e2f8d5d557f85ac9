"""SSRF guard: refused internal targets, allowed public and allow-listed ones (no real DNS)."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from sagas.adapters.targets import AllowList, TargetGuard, UnsafeTarget, parse_legacy_ipv4

PUBLIC = "93.184.215.14"


def fixed_resolver(table: dict[str, list[str]]) -> TargetGuard:
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"no such host {host}")
        return table[host]

    return TargetGuard(resolver=resolve)


GUARD = fixed_resolver(
    {
        "public.example": [PUBLIC],
        "localhost.evil.example": ["127.0.0.1"],
        "mixed.example": [PUBLIC, "10.1.2.3"],
        "v6loop.example": ["::1"],
    }
)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/hook", "loopback"),
        ("http://[::1]:8080/hook", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://10.0.0.1/hook", "private"),
        ("http://0x7f000001/hook", "loopback"),
        ("http://2130706433/hook", "loopback"),
        ("http://017700000001/hook", "loopback"),
        ("http://127.1/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://[::ffff:a9fe:a9fe]/", "metadata"),
        ("http://[64:ff9b::a00:1]/", "private"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://100.64.0.1/", "shared"),
        ("http://192.168.1.1/", "private"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[fec0::1]/", "site-local"),
        ("http://[feff:ffff::1]:8080/", "site-local"),
        ("http://localhost.evil.example/hook", "loopback"),
        ("http://v6loop.example/hook", "loopback"),
        ("http://mixed.example/hook", "private"),
    ],
)
def test_internal_targets_are_refused(url: str, reason: str) -> None:
    with pytest.raises(UnsafeTarget) as caught:
        GUARD.check(url)

    assert reason in caught.value.reason
    assert not caught.value.retryable


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_FLUSHALL",
        "ftp://public.example/",
        "//public.example/hook",
        "javascript:alert(1)",
    ],
)
def test_non_http_schemes_are_refused(url: str) -> None:
    with pytest.raises(UnsafeTarget, match="is not http"):
        GUARD.check(url)


def test_a_public_address_is_allowed() -> None:
    checked = GUARD.check("https://public.example/hook?x=1")

    assert (checked.host, checked.port, checked.addresses) == ("public.example", 443, (PUBLIC,))
    assert GUARD.check(f"http://{PUBLIC}:8080/").port == 8080


def test_an_allow_listed_loopback_sink_is_allowed_on_its_port_only() -> None:
    guard = TargetGuard(allow=AllowList.parse(["127.0.0.1:8099", "[::1]:8099"]))

    assert guard.check("http://127.0.0.1:8099/sink").port == 8099
    assert guard.check("http://[::1]:8099/sink").host == "::1"
    with pytest.raises(UnsafeTarget, match="loopback"):
        guard.check("http://127.0.0.1:8100/sink")


def test_an_allow_listed_network_permits_its_addresses_only() -> None:
    guard = TargetGuard(allow=AllowList.parse(["127.0.0.0/8"]))

    assert guard.check("http://127.0.0.2:1234/").addresses == ("127.0.0.2",)
    with pytest.raises(UnsafeTarget, match="private"):
        guard.check("http://10.0.0.1/")


def test_allow_list_matches_the_hex_spelling_of_an_allowed_host() -> None:
    guard = TargetGuard(allow=AllowList.parse(["127.0.0.1:80"]))

    assert guard.check("http://0x7f000001/").port == 80


def test_an_unresolvable_host_is_refused_as_retryable() -> None:
    with pytest.raises(UnsafeTarget) as caught:
        GUARD.check("http://unknown.example/")

    assert caught.value.retryable


@pytest.mark.parametrize(
    "host",
    [
        "a" * 64 + ".example",  # a label over 63 characters: idna raises UnicodeError
        "a..example",  # an empty label
        ".".join(["abcdefghij"] * 26),  # 285 characters
        "exa mple.example",
        "exa%00mple.example",
        "ex*ample.example",
    ],
)
def test_a_malformed_host_name_is_refused_for_good(host: str) -> None:
    with pytest.raises(UnsafeTarget) as caught:
        GUARD.check(f"https://{host}/hook")

    assert caught.value.reason.startswith("malformed host name")
    assert not caught.value.retryable


def test_a_resolver_raising_an_idna_error_is_a_permanent_refusal() -> None:
    def resolve(host: str, port: int) -> list[str]:
        return [str(a[4][0]) for a in socket.getaddrinfo("a" * 64 + ".example", port)]

    with pytest.raises(UnsafeTarget) as caught:
        TargetGuard(resolver=resolve).check("http://public.example/")

    assert caught.value.reason.startswith("malformed host name")
    assert not caught.value.retryable


def test_international_and_underscore_host_names_are_resolved() -> None:
    guard = fixed_resolver({"exämple.example": [PUBLIC], "_dmarc.example.": [PUBLIC]})

    assert guard.check("https://exämple.example/").addresses == (PUBLIC,)
    assert guard.check("https://_dmarc.example./").addresses == (PUBLIC,)


def test_a_bad_allow_list_entry_is_rejected() -> None:
    with pytest.raises(ValueError, match="neither"):
        AllowList.parse(["localhost"])


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("0x7f000001", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1.258", "10.1.1.2"),
        ("example.com", None),
        ("1.2.3.4.5", None),
        ("256.1.1.1", None),
        ("4294967296", None),
    ],
)
def test_legacy_ipv4_spellings(host: str, expected: str | None) -> None:
    parsed = parse_legacy_ipv4(host)

    assert parsed == (ipaddress.IPv4Address(expected) if expected else None)
