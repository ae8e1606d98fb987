"""The SDK in ``mode="tokens"``: typed live deltas, and resuming on logged events only."""

from __future__ import annotations

import httpx
import pytest

import tributary_client._async
import tributary_client._sync
from tributary_client import AsyncTributary, StreamMode, TokenDelta, Tributary, WorkflowEvent

WORKFLOW_ID = "wf_" + "0" * 32


WORKFLOW = {
    "workflow_id": WORKFLOW_ID,
    "tenant_id": "acme",
    "status": "completed",
    "task": "t",
    "created_at": "2026-11-30T10:00:00Z",
    "updated_at": "2026-11-30T10:00:01Z",
    "result": "Hello",
    "links": {"self": "s", "events": "e", "calls": "c"},
}


def delta(seq: int, text: str) -> str:
    return (
        "event: llm.delta\n"
        f'data: {{"type": "llm.delta", "workflow_id": "{WORKFLOW_ID}", "step_id": "s1", '
        f'"role": "agent", "attempt": 1, "iteration": 1, "call": 1, "try_number": 1, '
        f'"seq": {seq}, "text": "{text}"}}\n\n'
    )


def logged(position: str, kind: str) -> str:
    return f'id: {position}\nevent: {kind}\ndata: {{"type": "{kind}"}}\n\n'


# The first connection drops after a delta that followed the second logged event.
FIRST = logged("1-0", "workflow.requested") + logged("2-0", "step.started") + delta(0, "Hel")
SECOND = delta(1, "lo") + logged("3-0", "step.completed") + logged("4-0", "workflow.completed")


class Gateway:
    def __init__(self) -> None:
        self.asked: list[tuple[str | None, str | None]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith("/events"):
            return httpx.Response(200, json=WORKFLOW)
        resumed_from = request.headers.get("Last-Event-ID")
        self.asked.append((resumed_from, request.url.params.get("mode")))
        body = FIRST if resumed_from is None else SECOND
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_sleep(seconds: float) -> None:
        return None

    monkeypatch.setattr(tributary_client._sync, "_sleep", lambda seconds: None)
    monkeypatch.setattr(tributary_client._async, "_sleep", no_sleep)


def check(events: list[WorkflowEvent], gateway: Gateway) -> None:
    assert [(e.type, e.id) for e in events if not e.live] == [
        ("workflow.requested", "1-0"),
        ("step.started", "2-0"),
        ("step.completed", "3-0"),
        ("workflow.completed", "4-0"),
    ]
    deltas = [e.token_delta() for e in events if e.live]
    assert all(isinstance(d, TokenDelta) for d in deltas)
    assert "".join(d.text for d in deltas if d is not None) == "Hello"
    assert all(e.id == "" for e in events if e.live), "a delta has no position"
    # Resumed after the last logged event, not after the delta that followed it.
    assert gateway.asked == [(None, "tokens"), ("2-0", "tokens")]


def test_tokens_mode_yields_typed_deltas_and_resumes_on_the_log() -> None:
    gateway = Gateway()
    with Tributary("http://gw", "k", transport=httpx.MockTransport(gateway.handle)) as client:
        events = list(client.stream(WORKFLOW_ID, mode=StreamMode.TOKENS))
    check(events, gateway)


async def test_the_async_client_does_the_same_and_wait_takes_the_mode() -> None:
    gateway = Gateway()
    seen: list[WorkflowEvent] = []
    transport = httpx.MockTransport(gateway.handle)
    async with AsyncTributary("http://gw", "k", transport=transport) as client:
        events = [event async for event in client.stream(WORKFLOW_ID, mode="tokens")]
        check(events, gateway)
        gateway.asked.clear()
        workflow = await client.wait(WORKFLOW_ID, on_event=seen.append, mode="tokens")
    assert workflow.result == "Hello"
    check(seen, gateway)


def test_the_default_mode_sends_no_mode_parameter() -> None:
    gateway = Gateway()
    with Tributary("http://gw", "k", transport=httpx.MockTransport(gateway.handle)) as client:
        list(client.stream(WORKFLOW_ID))
    assert gateway.asked[0] == (None, None)
