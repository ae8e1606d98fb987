"""Free ports for services that restart on the same port (tributary_devstack.ports)."""

from __future__ import annotations

import socket
from pathlib import Path

from tributary_devstack.ports import free_port


def _ephemeral_range() -> tuple[int, int]:
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[:2]
    return int(low), int(high)


def test_a_free_port_lies_below_the_range_outgoing_connections_take_ports_from() -> None:
    low, _ = _ephemeral_range()
    ports = {free_port() for _ in range(20)}
    assert all(port < low for port in ports), sorted(ports)
    assert len(ports) > 1  # spread out: concurrent stacks do not all try one port


def test_a_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
