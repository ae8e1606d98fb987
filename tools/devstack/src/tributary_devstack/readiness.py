"""Whether components answer, and the error that names one that did not come up."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import redis

from tributary_devstack.procs import tail

TAIL_LINES = 40


class ComponentStartError(RuntimeError):
    """A component did not come up; the message names it and shows its log."""

    def __init__(self, component: str, reason: str, log_path: Path | None) -> None:
        self.component = component
        self.reason = reason
        self.log_path = log_path
        self.log_tail = tail(log_path, TAIL_LINES) if log_path is not None else ""
        message = f"{component} did not come up: {reason}"
        if log_path is not None:
            message += f"\nlog file: {log_path}"
            if self.log_tail:
                message += f"\n--- last {TAIL_LINES} lines of {log_path.name} ---\n"
                message += self.log_tail
        super().__init__(message)


def describe_exit(returncode: int | None) -> str:
    """Words for a Popen return code (negative means killed by that signal)."""
    if returncode is None:
        return "its process is gone (exit status unknown: not a child of this process)"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"its process was killed by {name}"
    return f"its process exited with code {returncode}"


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True if ``GET url`` answers 200."""
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def redis_ping(
    port: int,
    timeout: float = 2.0,
    *,
    tls_ca_path: Path | None = None,
    username: str | None = None,
    password: str | None = None,
) -> bool:
    """True if the Redis on 127.0.0.1:``port`` answers PING (over TLS with ``tls_ca_path``)."""
    tls: dict[str, object] = {}
    if tls_ca_path is not None:
        tls = {"ssl": True, "ssl_ca_certs": str(tls_ca_path), "ssl_cert_reqs": "required"}
    client = redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        username=username,
        password=password,
        **tls,  # type: ignore[arg-type]
    )
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()
