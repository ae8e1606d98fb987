"""Whether components answer, and the error that names one that did not come up."""

from __future__ import annotations

import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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


def redis_ping(url: str, options: Mapping[str, Any], timeout: float = 2.0) -> bool:
    """True if the Redis at ``url`` (with ``infra.redis_client_options``) answers PING."""
    client = redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, **options
    )
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()
