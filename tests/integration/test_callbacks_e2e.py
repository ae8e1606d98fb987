"""Workflow callbacks on the real stack: delivered, signed, and retried after a 500.

A small receiver on loopback (allowed through ``TRIBUTARY_CALLBACK_ALLOWED_TARGETS``,
as a local receiver must be) answers 500 to its first call and 200 to the next. The
workflow completes; the receiver gets exactly two calls, each signature verifies
with the recipe docs/api.md gives, both carry the same delivery id, and the
workflow's state shows both tries and the callback delivered.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.support.client import GatewayClient
from tests.support.stack import RunningServices, start_services
from tributary_devstack.stack import Stack
from tributary_scripted_llm import ScriptedLLMServer

pytestmark = pytest.mark.integration

SECRET = "e2e-callback-signing-secret"
# Generous for a loaded 2-core machine: one workflow, one retry a second after its 500.
WITHIN_S = 90


@dataclass(frozen=True)
class Call:
    headers: dict[str, str]
    body: bytes
    answered: int


@dataclass
class Receiver:
    """Answers 500 to the first call and 200 to every later one; keeps every call."""

    port: int = 0
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/tributary"

    def snapshot(self) -> list[Call]:
        with self.lock:
            return list(self.calls)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                status = 500 if not receiver.calls else 200
                receiver.calls.append(Call(dict(self.headers.items()), body, status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="callback-receiver", daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def callback_services(
    exclusive_topics: Stack, llm: ScriptedLLMServer, receiver: Receiver
) -> Iterator[RunningServices]:
    # Its own processes alone: another planner in the callbacks' group, configured
    # without these settings, would take part of the work.
    running = start_services(
        exclusive_topics,
        llm_base_url=llm.base_url,
        label="callbacks",
        extra_env={
            "TRIBUTARY_CALLBACK_SECRET": SECRET,
            "TRIBUTARY_CALLBACK_ALLOW_HTTP": "true",
            "TRIBUTARY_CALLBACK_ALLOWED_TARGETS": json.dumps([f"127.0.0.1:{receiver.port}"]),
            "TRIBUTARY_CALLBACK_BACKOFF_S": "1",
            "TRIBUTARY_CALLBACK_POLL_INTERVAL_S": "0.2",
        },
    )
    yield running
    running.stop()


def verify(secret: bytes, header: str, body: bytes, tolerance_s: int = 300) -> bool:
    """The receiver's check, exactly as docs/api.md gives it."""
    fields = dict(item.split("=", 1) for item in header.split(","))
    timestamp = int(fields["t"])
    if abs(time.time() - timestamp) > tolerance_s:
        return False
    signed = f"{timestamp}.".encode() + body
    expected = hmac.new(secret, signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])


async def test_a_callback_is_delivered_signed_and_retried_after_a_500(
    callback_services: RunningServices, api_key: str, receiver: Receiver, marker: str
) -> None:
    gateway = GatewayClient(callback_services.gateway_url, api_key)
    try:
        workflow_id = await gateway.start(
            f"Say hello {marker}", options={"callback_url": receiver.url}
        )
        await gateway.wait_for_status(workflow_id, "completed", within=WITHIN_S)
        state: dict[str, Any] = {}
        for _ in range(int(WITHIN_S / 0.2)):
            state = await gateway.get(workflow_id)
            if state["callback"]["state"] != "pending":
                break
            await asyncio.sleep(0.2)
    finally:
        await gateway.aclose()

    assert state["callback"]["state"] == "delivered", state["callback"]
    assert state["callback"]["url"] == receiver.url
    assert [a["status"] for a in state["callback"]["attempts"]] == [500, 200]
    assert all(a["duration_ms"] >= 0 and a["error"] is None for a in state["callback"]["attempts"])

    first, second = receiver.snapshot()  # exactly two: the 500, then the delivery
    assert (first.answered, second.answered) == (500, 200)
    for call in (first, second):
        assert verify(SECRET.encode(), call.headers["Tributary-Signature"], call.body)
        body = json.loads(call.body)
        assert (body["workflow_id"], body["status"]) == (workflow_id, "completed")
        assert body["result"] == state["result"]
        assert SECRET not in call.body.decode()
    assert first.headers["Tributary-Delivery-Id"] == second.headers["Tributary-Delivery-Id"]
    assert first.headers["Tributary-Delivery-Id"] == json.loads(first.body)["delivery_id"]
