"""``python -m tributary_devstack demo``: one workflow through the running stack."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from tributary_devstack.admin_key import read_admin_key
from tributary_devstack.config import StackConfig
from tributary_devstack.demo_format import EventFormatter, parse_data
from tributary_devstack.llm import resolve_llm
from tributary_devstack.sse import SseParser, parse_lines
from tributary_shared.core.events import TERMINAL_EVENT_TYPES

# Three parts separated by ';': the bundled scripted LLM plans one step per part,
# and a part with arithmetic in it makes its agent call the calculator tool.
DEFAULT_TASK = (
    "Name the longest river of Europe; convert its 3530 km to miles with 3530 * 0.621371; "
    "summarise the findings"
)
_TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})


class DemoError(RuntimeError):
    pass


def _submit(client: httpx.Client, task: str) -> str:
    response = client.post("/v1/workflows", json={"task": task})
    if response.status_code != 202:
        raise DemoError(f"POST /v1/workflows answered {response.status_code}: {response.text}")
    body = response.json()
    workflow_id = body.get("workflow_id")
    if not isinstance(workflow_id, str):
        raise DemoError(f"no workflow_id in the answer: {body}")
    return workflow_id


def _follow_events(
    client: httpx.Client, workflow_id: str, deadline: float, say: Callable[[str], None]
) -> str | None:
    """Print events as they arrive; returns the terminal event type if one came.

    If the stream drops early it is resumed with ``Last-Event-ID`` so no event
    is printed twice or lost.
    """
    parser = SseParser()
    formatter = EventFormatter()
    while time.monotonic() < deadline:
        headers = {"Accept": "text/event-stream"}
        if parser.last_event_id:
            headers["Last-Event-ID"] = parser.last_event_id
        try:
            with client.stream(
                "GET", f"/v1/workflows/{workflow_id}/events", headers=headers
            ) as response:
                if response.status_code != 200:
                    raise DemoError(f"event stream answered {response.status_code}")
                for event in parse_lines(response.iter_lines(), parser):
                    say(formatter.line(event.event, parse_data(event.data)))
                    if event.event in TERMINAL_EVENT_TYPES:
                        return event.event
                    if time.monotonic() >= deadline:
                        return None
        except httpx.TransportError as exc:
            say(f"  (event stream interrupted: {exc!r}; resuming)")
        if _status(client, workflow_id).get("status") in _TERMINAL_STATUSES:
            return None
        time.sleep(0.5)
    return None


def _status(client: httpx.Client, workflow_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/workflows/{workflow_id}")
    if response.status_code != 200:
        raise DemoError(f"GET /v1/workflows/{workflow_id} answered {response.status_code}")
    body: dict[str, Any] = response.json()
    return body


def run_demo(
    config: StackConfig,
    *,
    task: str | None = None,
    timeout_s: float = 300.0,
    say: Callable[[str], None] = print,
) -> int:
    """Submit one workflow, stream its events, print the outcome; 0 if it completed."""
    llm = resolve_llm(config)
    say(llm.describe())
    key = read_admin_key(config)
    if key is None:
        say(f"No API key in {config.admin_key_file}: 'make up' issues one.")
        return 2
    say(f"Using the local admin API key from {config.admin_key_file}.")
    task = task or DEFAULT_TASK
    deadline = time.monotonic() + timeout_s
    timeout = httpx.Timeout(10.0, read=60.0)
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=config.gateway_url, timeout=timeout, headers=headers) as client:
        try:
            workflow_id = _submit(client, task)
            say(f"Submitted workflow {workflow_id} to {config.gateway_url}")
            say(f"Task: {task}")
            say("Events:")
            _follow_events(client, workflow_id, deadline, say)
            final = _status(client, workflow_id)
        except httpx.HTTPError as exc:
            say(f"Gateway at {config.gateway_url} is not reachable ({exc!r}); is the stack up?")
            return 2
        except DemoError as exc:
            say(f"Demo failed: {exc}")
            return 1
    status = final.get("status")
    say(f"Final status: {status}")
    if final.get("result") is not None:
        say("Result:")
        say(str(final["result"]))
    if final.get("error"):
        say(f"Error: {json.dumps(final['error'])}")
    if status != "completed":
        say("The workflow did not complete.")
        return 1
    return 0
