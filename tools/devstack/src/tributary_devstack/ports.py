"""Free TCP ports for processes that are stopped and started again on the same port.

A port the kernel hands out for ``bind(0)`` lies in its ephemeral range
(``/proc/sys/net/ipv4/ip_local_port_range``, 32768-60999 by default), the
same range it takes the source ports of outgoing connections from. A service
stopped and restarted on such a port can find it taken meanwhile by any
process's outgoing connection, and fail with "address already in use". So
free ports are picked below that range.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

__all__ = ["free_port"]

_LOWEST = 20000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _first_ephemeral() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` that nothing listens on now, outside the ephemeral range."""
    below = _first_ephemeral()
    candidates = list(range(_LOWEST, below)) if below > _LOWEST + 100 else []
    random.shuffle(candidates)
    for port in candidates[:500]:
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # no room below the range: any free port will do
        sock.bind((host, 0))
        chosen: int = sock.getsockname()[1]
        return chosen
