"""SSRF guard: literal normalisation, address classes, and a corpus of refused URLs.

Every corpus URL goes through the real ``fetch_url`` tool with the default
(public-only) policy. The network is replaced by a tripwire transport: if any
case got past the guard, the tripwire records it and the test fails instead
of a request leaving the machine.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address

import httpx
import pytest

from tributary_agent_runner.tools.fetch_url import FetchUrlArgs, make_fetch_url_tool
from tributary_agent_runner.tools.registry import Tool, ToolError
from tributary_shared.core.netguard import (
    HostRejected,
    IPAddress,
    allow_exact,
    classify_address,
    normalise_host,
    parse_ipv4_literal,
    public_only,
)

# --- IPv4 literal forms --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0x7f.0.0.0x1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("0x", "0.0.0.0"),
        ("10.0x10.1", "10.16.0.1"),
        ("169.254.43518", "169.254.169.254"),
        ("4294967295", "255.255.255.255"),
    ],
)
def test_ipv4_literal_forms(literal: str, expected: str) -> None:
    assert parse_ipv4_literal(literal) == IPv4Address(expected)


@pytest.mark.parametrize(
    "literal", ["1.2.3.4.5", "256.0.0.1", "1.256.0.1", "4294967296", "08.0.0.1", "0x1g", "1..2"]
)
def test_invalid_ipv4_literals(literal: str) -> None:
    with pytest.raises(HostRejected, match="invalid IPv4 address"):
        parse_ipv4_literal(literal)


@pytest.mark.parametrize(
    ("host", "address", "name"),
    [
        ("Example.COM", None, "example.com"),
        ("example.com.", None, "example.com"),
        ("xn--bcher-kva.de", None, "xn--bcher-kva.de"),
        ("0x7f.example", None, "0x7f.example"),
        ("127.0.0.1.nip.io", None, "127.0.0.1.nip.io"),
        ("0x7f.1", "127.0.0.1", None),
        ("1.0x10", "1.0.0.16", None),
        ("::1", "::1", None),
        ("::ffff:127.0.0.1", "127.0.0.1", None),  # mapped addresses are checked as IPv4
        ("::ffff:7f00:1", "127.0.0.1", None),
    ],
)
def test_normalise_host(host: str, address: str | None, name: str | None) -> None:
    normalised = normalise_host(host)
    assert normalised.name == name
    assert normalised.address == (ip_address(address) if address else None)


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("", "URL has no host"),
        ("fe80::1%25eth0", "scoped IPv6"),
        ("1:2:3", "invalid IPv6"),
        ("%31%32%37.0.0.1", "invalid IPv4 address"),
        ("%31%32%37.example", "invalid host name"),
        ("exa%20mple.com", "invalid host name"),
        ("a..b", "invalid host name"),
        ("-leading.example", "invalid host name"),
        ("1.2.3.4.5", "invalid IPv4"),
        ("x" * 64 + ".example", "invalid host name"),
    ],
)
def test_rejected_hosts(host: str, reason: str) -> None:
    with pytest.raises(HostRejected, match=reason):
        normalise_host(host)


# --- address classes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback address"),
        ("127.255.255.254", "loopback address"),
        ("0.0.0.0", "unspecified address"),
        ("10.1.2.3", "private address"),
        ("172.16.0.1", "private address"),
        ("172.31.255.255", "private address"),
        ("192.168.1.1", "private address"),
        ("100.64.0.1", "carrier-grade NAT address"),
        ("169.254.169.254", "link-local address"),
        ("224.0.0.1", "multicast address"),
        ("239.255.255.250", "multicast address"),
        ("240.0.0.1", "reserved address"),
        ("255.255.255.255", "reserved address"),
        ("192.0.0.8", "reserved address"),
        ("198.18.0.1", "benchmarking address"),
        ("198.19.255.255", "benchmarking address"),
        ("192.0.2.1", "documentation address"),
        ("198.51.100.7", "documentation address"),
        ("203.0.113.9", "documentation address"),
        ("::", "unspecified address"),
        ("::1", "loopback address"),
        ("::ffff:127.0.0.1", "loopback address"),
        ("::ffff:10.0.0.1", "private address"),
        ("::ffff:169.254.169.254", "link-local address"),
        ("fc00::1", "unique-local address"),
        ("fd12:3456:789a::1", "unique-local address"),
        ("fe80::1", "link-local address"),
        ("fec0::1", "site-local address"),
        ("ff02::1", "multicast address"),
        ("2001:db8::1", "documentation address"),
        ("2001:2::1", "benchmarking address"),
        ("100::1", "reserved address"),
        ("::127.0.0.1", "loopback address embedded in IPv6"),  # IPv4-compatible
        ("::8.8.8.8", "reserved address"),  # deprecated form, never allowed
        ("::ffff:0:7f00:1", "loopback address embedded in IPv6"),  # IPv4-translated
        ("64:ff9b::7f00:1", "loopback address embedded in IPv6"),  # NAT64
        ("64:ff9b::a9fe:a9fe", "link-local address embedded in IPv6"),
        ("64:ff9b:1::a00:1", "private address"),  # local-use NAT64
        ("2002:7f00:1::1", "loopback address embedded in IPv6"),  # 6to4
        ("2002:c0a8:101::1", "private address embedded in IPv6"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "reserved address"),  # Teredo
        ("4000::1", "reserved address"),  # outside global unicast
        ("fe80::1%eth0", "scoped address"),
    ],
)
def test_non_public_addresses(address: str, reason: str) -> None:
    assert classify_address(ip_address(address)) == reason


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "172.32.0.1",
        "100.128.0.1",
        "2606:4700:4700::1111",
        "2a00:1450:4001:82a::200e",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",  # NAT64 of a public address
        "2002:808:808::1",  # 6to4 of a public address
    ],
)
def test_public_addresses(address: str) -> None:
    assert classify_address(ip_address(address)) is None
    assert public_only(ip_address(address), 443) is None


def test_allow_exact_allows_only_that_address_and_port() -> None:
    policy = allow_exact(("127.0.0.1", 8080))
    assert policy(IPv4Address("127.0.0.1"), 8080) is None
    assert policy(IPv6Address("::ffff:127.0.0.1"), 8080) is None
    assert policy(IPv4Address("127.0.0.1"), 8081) == "loopback address"
    assert policy(IPv4Address("127.0.0.2"), 8080) == "loopback address"
    assert policy(IPv6Address("::1"), 8080) == "loopback address"
    assert policy(IPv4Address("8.8.8.8"), 1) is None  # falls back to public-only


# --- the corpus, through the tool -------------------------------------------------------------


class Tripwire:
    """A transport that records any request that got past the guard."""

    def __init__(self) -> None:
        self.leaked: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.leaked.append(str(request.url))
        return httpx.Response(200, stream=httpx.ByteStream(b"leaked"))


def guarded_tool(tripwire: Tripwire, **kwargs: object) -> Tool[FetchUrlArgs]:
    return make_fetch_url_tool(transport=httpx.MockTransport(tripwire), **kwargs)  # type: ignore[arg-type]


async def assert_refused(tool: Tool[FetchUrlArgs], tripwire: Tripwire, url: str) -> str:
    with pytest.raises(ToolError) as info:
        await tool.invoke(json.dumps({"url": url}))
    message = str(info.value)
    assert message.startswith("refused: "), message
    assert "Traceback" not in message
    assert tripwire.leaked == []
    return message


SSRF_CORPUS = [
    # loopback
    ("http://127.0.0.1/", "loopback address"),
    ("http://127.0.0.1:8080/admin", "loopback address"),
    ("http://127.10.20.30/", "loopback address"),
    ("http://[::1]/", "loopback address"),
    ("http://[0:0:0:0:0:0:0:1]:80/", "loopback address"),
    ("http://127.0.0.1./", "loopback address"),
    # private, CGNAT, link-local / metadata
    ("http://10.0.0.1/", "private address"),
    ("http://172.16.0.1/", "private address"),
    ("http://192.168.0.1/", "private address"),
    ("http://100.64.0.1/", "carrier-grade NAT address"),
    ("http://169.254.169.254/latest/meta-data/", "link-local address"),
    ("http://[fe80::1]/", "link-local address"),
    ("http://[fd00:ec2::254]/", "unique-local address"),
    # IPv4 in IPv6
    ("http://[::ffff:127.0.0.1]/", "loopback address"),
    ("http://[::ffff:7f00:1]/", "loopback address"),
    ("http://[::ffff:169.254.169.254]/", "link-local address"),
    ("http://[::127.0.0.1]/", "loopback address embedded in IPv6"),
    ("http://[64:ff9b::10.0.0.1]/", "private address embedded in IPv6"),
    ("http://[2002:a00:1::]/", "private address embedded in IPv6"),
    # numeric IPv4 forms
    ("http://2130706433/", "loopback address"),
    ("http://0177.0.0.1/", "loopback address"),
    ("http://0x7f000001/", "loopback address"),
    ("http://0x7f.1/", "loopback address"),
    ("http://127.1/", "loopback address"),
    ("http://0x7F.0.0.1/", "loopback address"),
    ("http://2852039166/", "link-local address"),  # 169.254.169.254
    ("http://0xa9.0xfe.0xa9.0xfe/", "link-local address"),
    ("http://012.0.0.1/", "private address"),  # octal 10.0.0.1
    ("http://0300.0250.0.01:8080/", "private address"),  # octal 192.168.0.1
    ("http://0x7f.1:8080/", "loopback address"),
    # unspecified, multicast, reserved, benchmarking, documentation
    ("http://0.0.0.0/", "unspecified address"),
    ("http://0/", "unspecified address"),
    ("http://[::]/", "unspecified address"),
    ("http://224.0.0.251/", "multicast address"),
    ("http://[ff02::1]/", "multicast address"),
    ("http://255.255.255.255/", "reserved address"),
    ("http://198.18.0.1/", "benchmarking address"),
    ("http://192.0.2.1/", "documentation address"),
    ("http://[2001:db8::1]/", "documentation address"),
    # https is no different
    ("https://127.0.0.1/", "loopback address"),
    ("https://[::ffff:10.1.1.1]:8443/", "private address"),
]


@pytest.mark.parametrize(("url", "reason"), SSRF_CORPUS)
async def test_ssrf_corpus_is_refused(url: str, reason: str) -> None:
    tripwire = Tripwire()
    message = await assert_refused(guarded_tool(tripwire), tripwire, url)
    assert message == f"refused: {reason}"


async def test_localhost_via_the_real_resolver_is_refused() -> None:
    tripwire = Tripwire()
    for url in ("http://localhost/", "http://LOCALHOST.:8080/x", "https://localhost/"):
        message = await assert_refused(guarded_tool(tripwire), tripwire, url)
        assert message == "refused: localhost resolves to a loopback address"


def resolver_for(answers: dict[str, list[str]]) -> object:
    async def resolve(host: str, port: int) -> Sequence[IPAddress]:
        return [ip_address(a) for a in answers[host]]

    return resolve


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        (["127.0.0.1"], "loopback address"),
        (["::1"], "loopback address"),
        (["::ffff:10.0.0.1"], "private address"),
        (["169.254.169.254"], "link-local address"),
        (["93.184.216.34", "10.0.0.5"], "private address"),  # rebinding-style mixed answers
        (["2606:4700:4700::1111", "fd00::1"], "unique-local address"),
    ],
)
async def test_names_resolving_to_internal_addresses_are_refused(
    answers: list[str], reason: str
) -> None:
    tripwire = Tripwire()
    tool = guarded_tool(tripwire, resolver=resolver_for({"evil.example": answers}))
    message = await assert_refused(tool, tripwire, "http://evil.example/")
    # The class is named, the internal address itself is not.
    assert message == f"refused: evil.example resolves to a {reason}"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "only http:// and https:// URLs can be fetched"),
        ("ftp://example.com/", "only http:// and https:// URLs can be fetched"),
        ("gopher://127.0.0.1:70/_x", "only http:// and https:// URLs can be fetched"),
        ("dict://127.0.0.1:11211/", "only http:// and https:// URLs can be fetched"),
        ("example.com/page", "only http:// and https:// URLs can be fetched"),
        ("http://user:pw@example.com/", "URLs with credentials (user:password@) are not fetched"),
        ("http://user@0x7f.1/", "URLs with credentials (user:password@) are not fetched"),
        (
            "http://example.com\\@127.0.0.1/",
            "URLs with credentials (user:password@) are not fetched",
        ),
        ("http:///path", "URL has no host"),
        ("http://example.com:99999/", "invalid port"),
        ("http://example.com:0/", "invalid port"),
        ("http://%31%32%37.0.0.1/", "invalid IPv4 address"),
        ("http://exa%20mple.com/", "invalid host name"),
        ("http://1.2.3.4.5/", "invalid IPv4 address"),
        ("http://[fe80::1%25eth0]/", "scoped IPv6 addresses are not allowed"),
        ("http://[::1/", "not a valid URL"),
        ("http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", "not a valid URL"),  # fullwidth
    ],
)
async def test_malformed_and_non_http_urls_are_refused(url: str, reason: str) -> None:
    tripwire = Tripwire()
    message = await assert_refused(guarded_tool(tripwire), tripwire, url)
    assert message == f"refused: {reason}"


async def test_public_target_passes_the_guard() -> None:
    """Control case: the tripwire does fire when the guard allows a request."""
    tripwire = Tripwire()
    tool = guarded_tool(tripwire, resolver=resolver_for({"public.example": ["93.184.216.34"]}))
    await tool.invoke(json.dumps({"url": "http://public.example/"}))
    assert tripwire.leaked == ["http://93.184.216.34/"]
