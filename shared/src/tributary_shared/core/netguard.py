"""Pure checks that decide whether an outbound fetch may reach an address.

Nothing here does I/O: host normalisation and address classification are
plain functions so that they can be tested exhaustively and reused by any
tool that talks to model-chosen URLs.

Why so careful: a model (or a page it read) can ask for ``http://127.1/``,
``http://0x7f000001/`` or ``http://[::ffff:10.0.0.1]/``; libc and browsers
accept all of these as IPv4 literals, so the host is normalised the way they
would (the WHATWG URL host parser, which agrees with ``inet_aton``) before the
address is classified. Names are resolved elsewhere; every address a name
resolves to goes through the same policy.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

IPAddress = IPv4Address | IPv6Address

#: Decides whether a connection to ``(address, port)`` is allowed. Returns
#: ``None`` to allow, or a short reason (an address class such as
#: ``"loopback address"``) to refuse. The reason is shown to the model.
AddressPolicy = Callable[[IPAddress, int], str | None]


class HostRejected(ValueError):
    """A URL host that is refused before any resolution; the message is the reason."""


# --- classification tables -------------------------------------------------
#
# Explicit tables rather than ``ipaddress``'s ``is_private``/``is_global``
# alone: those flags changed between Python releases, and the refusal message
# should name the class of address. ``is_global`` is still consulted last as a
# catch-all for special-purpose ranges not listed here.

_V4_BLOCKED: tuple[tuple[IPv4Network, str], ...] = tuple(
    (IPv4Network(net), label)
    for net, label in (
        ("0.0.0.0/8", "unspecified address"),
        ("10.0.0.0/8", "private address"),
        ("100.64.0.0/10", "carrier-grade NAT address"),
        ("127.0.0.0/8", "loopback address"),
        ("169.254.0.0/16", "link-local address"),  # includes cloud metadata endpoints
        ("172.16.0.0/12", "private address"),
        ("192.0.0.0/24", "reserved address"),
        ("192.0.2.0/24", "documentation address"),
        ("192.88.99.0/24", "reserved address"),
        ("192.168.0.0/16", "private address"),
        ("198.18.0.0/15", "benchmarking address"),
        ("198.51.100.0/24", "documentation address"),
        ("203.0.113.0/24", "documentation address"),
        ("224.0.0.0/4", "multicast address"),
        ("240.0.0.0/4", "reserved address"),  # includes 255.255.255.255
    )
)

_V6_BLOCKED: tuple[tuple[IPv6Network, str], ...] = tuple(
    (IPv6Network(net), label)
    for net, label in (
        ("::/128", "unspecified address"),
        ("::1/128", "loopback address"),
        ("64:ff9b:1::/48", "private address"),  # local-use NAT64 (RFC 8215)
        ("100::/64", "reserved address"),  # discard-only
        ("2001::/32", "reserved address"),  # Teredo tunnels: reach arbitrary IPv4
        ("2001:2::/48", "benchmarking address"),
        ("2001:db8::/32", "documentation address"),
        ("3fff::/20", "documentation address"),
        ("fc00::/7", "unique-local address"),
        ("fe80::/10", "link-local address"),
        ("fec0::/10", "site-local address"),
        ("ff00::/8", "multicast address"),
    )
)

_V4_MAPPED = IPv6Network("::ffff:0:0/96")
_V4_COMPATIBLE = IPv6Network("::/96")
_V4_TRANSLATED = IPv6Network("::ffff:0:0:0/96")  # SIIT, RFC 2765
_NAT64 = IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_SIX_TO_FOUR = IPv6Network("2002::/16")
_GLOBAL_UNICAST = IPv6Network("2000::/3")


def canonical_address(ip: IPAddress) -> IPAddress:
    """Collapse an IPv4-mapped IPv6 address to the IPv4 address it denotes.

    A socket connecting to ``::ffff:127.0.0.1`` reaches 127.0.0.1, so the
    mapped form is checked (and connected to) as plain IPv4.
    """
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _embedded_ipv4(ip: IPv6Address) -> IPv4Address | None:
    """The IPv4 address carried inside a transition-mechanism IPv6 address."""
    if ip in _V4_TRANSLATED or ip in _V4_COMPATIBLE or ip in _NAT64:
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _SIX_TO_FOUR:
        return IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)
    return None


def _classify_v4(ip: IPv4Address) -> str | None:
    for net, label in _V4_BLOCKED:
        if ip in net:
            return label
    return None if ip.is_global else "reserved address"


def _classify_v6(ip: IPv6Address) -> str | None:
    if ip.scope_id:
        return "scoped address"
    for net, label in _V6_BLOCKED:
        if ip in net:
            return label
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        inner = _classify_v4(embedded)
        if inner is not None:
            return f"{inner} embedded in IPv6"
        if ip in _V4_COMPATIBLE or ip in _V4_TRANSLATED:
            # Deprecated forms that no public service uses; a stack may
            # still route them to the embedded address, so never allow.
            return "reserved address"
        # NAT64 / 6to4 wrapping a public IPv4 address: reachable publicly.
        return None
    if ip not in _GLOBAL_UNICAST or not ip.is_global:
        return "reserved address"
    return None


def classify_address(ip: IPAddress) -> str | None:
    """Return why ``ip`` is not a public unicast address, or ``None`` if it is."""
    ip = canonical_address(ip)
    if isinstance(ip, IPv4Address):
        return _classify_v4(ip)
    return _classify_v6(ip)


def public_only(ip: IPAddress, port: int) -> str | None:
    """The default policy: any port, public unicast addresses only."""
    del port  # ports are not restricted; the address is what matters
    return classify_address(ip)


@dataclass(frozen=True, slots=True)
class AllowExact:
    """Allow exactly the listed ``(address, port)`` pairs, defer the rest.

    Useful to reach one known internal service (or a test server on
    loopback) without opening the whole private range it lives in.
    """

    targets: frozenset[tuple[IPAddress, int]]
    fallback: AddressPolicy = public_only

    def __call__(self, ip: IPAddress, port: int) -> str | None:
        if (canonical_address(ip), port) in self.targets:
            return None
        return self.fallback(ip, port)


def allow_exact(*targets: tuple[str, int], fallback: AddressPolicy = public_only) -> AllowExact:
    """Build an :class:`AllowExact` policy from ``("127.0.0.1", 8080)``-style pairs."""
    return AllowExact(
        frozenset((canonical_address(ipaddress.ip_address(h)), p) for h, p in targets),
        fallback,
    )


def address_and_port(text: str) -> tuple[str, int]:
    """Split ``"10.0.0.5:8080"`` or ``"[fd00::5]:8080"`` into an address literal and a port.

    For :func:`allow_exact` from configuration. Names are refused: what a name
    resolves to can change after it was allowed. Raises ``ValueError``.
    """
    host, colon, port_text = text.strip().rpartition(":")
    if not colon or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text!r} is not address:port")
    bracketed = host.startswith("[") and host.endswith("]")
    if ":" in host and not bracketed:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, [address]:port")
    try:
        address = ipaddress.ip_address(host[1:-1] if bracketed else host)
    except ValueError:
        raise ValueError(f"{text!r}: {host!r} is not an IP address (names are refused)") from None
    return str(canonical_address(address)), int(port_text)


# --- host normalisation ------------------------------------------------------

# After IDNA encoding a DNS name is plain ASCII; anything else (percent
# escapes, spaces, backslashes) is a parser-confusion attempt or a typo.
_HOSTNAME_RE = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*$")
_MAX_HOSTNAME = 253


def _ipv4_number(part: str) -> int | None:
    """Parse one dotted part as libc's inet_aton does: 0x hex, leading-0 octal, decimal."""
    if part == "":
        return None
    radix = 10
    if part[:2] in ("0x", "0X"):
        radix, part = 16, part[2:]
    elif len(part) > 1 and part[0] == "0":
        radix, part = 8, part[1:]
    if part == "":
        return 0  # "0x" alone is zero for both WHATWG and inet_aton
    digits = {8: "01234567", 10: "0123456789", 16: "0123456789abcdefABCDEF"}[radix]
    if any(c not in digits for c in part):
        return None
    return int(part, radix)


def _split_parts(host: str) -> list[str]:
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()  # a single trailing dot is allowed, as in a fully qualified name
    return parts


def ends_in_number(host: str) -> bool:
    """WHATWG "ends in a number": such hosts are IPv4 literals or invalid, never names."""
    last = _split_parts(host)[-1]
    if last != "" and last.isascii() and last.isdigit():
        return True
    return last[:2] in ("0x", "0X") and _ipv4_number(last) is not None


def parse_ipv4_literal(host: str) -> IPv4Address:
    """Parse every IPv4 form a libc or browser accepts (``127.1``, ``0x7f.1``, ``2130706433``).

    Raises :class:`HostRejected` when the host looks numeric but is not a
    valid address (``1.2.3.4.5``, ``256.1.1.1``), since resolvers disagree on
    what such hosts mean.
    """
    parts = _split_parts(host)
    if len(parts) > 4:
        raise HostRejected("invalid IPv4 address")
    numbers = [_ipv4_number(p) for p in parts]
    values = [n for n in numbers if n is not None]
    if len(values) != len(numbers):
        raise HostRejected("invalid IPv4 address")
    *head, last = values
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(values)):
        raise HostRejected("invalid IPv4 address")
    value = last
    for i, n in enumerate(head):
        value += n << (8 * (3 - i))
    return IPv4Address(value)


@dataclass(frozen=True, slots=True)
class Host:
    """A normalised URL host: either an address literal or a DNS name to resolve."""

    address: IPAddress | None
    name: str | None


def normalise_host(raw_host: str) -> Host:
    """Turn the host part of a URL into an address literal or a lower-case DNS name.

    ``raw_host`` is the ASCII (IDNA-encoded) host without brackets, as
    ``httpx.URL.raw_host`` gives it.
    """
    host = raw_host.strip().lower()
    if host == "":
        raise HostRejected("URL has no host")
    if ":" in host:
        if "%" in host:
            raise HostRejected("scoped IPv6 addresses are not allowed")
        try:
            return Host(address=canonical_address(IPv6Address(host)), name=None)
        except ValueError:
            raise HostRejected("invalid IPv6 address") from None
    if ends_in_number(host):
        return Host(address=parse_ipv4_literal(host), name=None)
    name = host[:-1] if host.endswith(".") else host
    if len(name) > _MAX_HOSTNAME or not _HOSTNAME_RE.fullmatch(name):
        raise HostRejected("invalid host name")
    return Host(address=None, name=name)
