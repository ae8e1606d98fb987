"""Small pieces both clients use: headers, answers, deadlines."""

from __future__ import annotations

import time
from importlib.metadata import PackageNotFoundError, version

import httpx

from tributary_client._errors import WaitTimeoutError
from tributary_client._models import WorkflowAccepted
from tributary_client._resume import Resumption

__all__ = ["accepted", "client_headers", "read_timeout_until", "remaining", "wait_timed_out"]

try:
    VERSION = version("tributary-client")
except PackageNotFoundError:  # imported from a source tree, not installed
    VERSION = "0.0.0"


def client_headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}", "User-Agent": f"tributary-client/{VERSION}"}


def accepted(response: httpx.Response) -> WorkflowAccepted:
    replayed = response.headers.get("Idempotent-Replayed", "").lower() == "true"
    return WorkflowAccepted.model_validate({**response.json(), "replayed": replayed})


def remaining(deadline: float) -> float:
    return deadline - time.monotonic()


def read_timeout_until(timeout: httpx.Timeout, deadline: float | None) -> httpx.Timeout:
    """The client's timeout, its reads cut short so none outlasts the deadline."""
    if deadline is None:
        return timeout
    left = max(remaining(deadline), 0.001)
    read = left if timeout.read is None else min(timeout.read, left)
    return httpx.Timeout(connect=timeout.connect, read=read, write=timeout.write, pool=timeout.pool)


def wait_timed_out(resumption: Resumption) -> WaitTimeoutError:
    return WaitTimeoutError(
        f"workflow {resumption.workflow_id} had not ended when the wait's timeout ran out "
        f"(last event {resumption.last_event_id or 'none'})"
    )
