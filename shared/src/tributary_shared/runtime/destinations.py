"""Where an outbound request to a URL chosen by someone else may go: resolved once,
every answer checked, the checked addresses pinned.

Used by ``fetch_url`` (URLs a model chose) and by workflow callbacks (URLs a client
chose): both must not become a way into the cluster (SSRF). The host is normalised
as a libc or browser would (``core.netguard``), names are resolved once and refused
if *any* answer is refused by the policy, and the caller connects to the returned
addresses themselves, so a second DNS answer (rebinding) cannot move the connection.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from ipaddress import ip_address

from tributary_shared.core.netguard import (
    AddressPolicy,
    HostRejected,
    IPAddress,
    canonical_address,
    normalise_host,
)

__all__ = [
    "Destination",
    "DestinationRefused",
    "Resolver",
    "checked_destination",
    "system_resolver",
]

#: Resolves a host name to addresses (``(host, port) -> addresses``); injectable for tests.
Resolver = Callable[[str, int], Awaitable[Sequence[IPAddress]]]


class DestinationRefused(Exception):
    """The destination may not be reached, or cannot be; the message says why."""

    def __init__(self, message: str, *, permanent: bool = True) -> None:
        super().__init__(message)
        self.permanent = permanent
        """False when it may pass later (the name did not resolve now)."""


@dataclass(frozen=True, slots=True)
class Destination:
    """A host and port that passed the policy, with the addresses to connect to."""

    host_name: str | None  # None when the URL host is an address literal
    port: int
    addresses: tuple[IPAddress, ...]


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Resolve with the event loop's non-blocking ``getaddrinfo``, keeping answer order."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        if not isinstance(sockaddr[0], str):  # not an IP socket address
            continue
        ip = ip_address(sockaddr[0])
        if ip not in addresses:
            addresses.append(ip)
    return addresses


async def checked_destination(
    raw_host: bytes, port: int, *, policy: AddressPolicy, resolver: Resolver
) -> Destination:
    """The addresses ``raw_host`` (ASCII, IDNA-encoded, as ``httpx.URL.raw_host``) may be
    reached at on ``port``; raises ``DestinationRefused``."""
    try:
        host = normalise_host(raw_host.decode("ascii"))
    except (HostRejected, UnicodeDecodeError) as exc:
        raise DestinationRefused(f"refused: {exc}") from None
    if host.address is not None:
        reason = policy(host.address, port)
        if reason is not None:
            raise DestinationRefused(f"refused: {reason}")
        return Destination(None, port, (host.address,))

    assert host.name is not None
    try:
        answers = await resolver(host.name, port)
    except (OSError, UnicodeError):
        raise DestinationRefused(f"could not resolve host {host.name!r}", permanent=False) from None
    if not answers:
        raise DestinationRefused(f"could not resolve host {host.name!r}", permanent=False)
    # All answers must pass: the client could otherwise be steered to the
    # bad one, and a rebinding name typically mixes public and private.
    for answer in answers:
        reason = policy(answer, port)
        if reason is not None:
            raise DestinationRefused(f"refused: {host.name} resolves to a {reason}")
    # Connect to ::ffff:a.b.c.d as the IPv4 address it is, like the check did.
    pinned = dict.fromkeys(canonical_address(answer) for answer in answers)
    return Destination(host.name, port, tuple(pinned))
