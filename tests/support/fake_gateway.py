"""A scripted gateway for the ``tributary`` command's tests: one workflow, told by a fixed story.

It answers what ``tributary run`` sends: ``POST /v1/workflows`` (202), ``GET
/v1/workflows/{id}`` (the workflow running, then its final state once the
stream has told its end), ``GET .../events`` (the story as Server-Sent Events)
and ``POST .../input`` (answers, recorded). After an ``input.requested`` event
the stream holds until an answer came, as a paused workflow would.

Two ways in: ``transport()`` (``httpx.MockTransport``, in-process) and
``serving()`` (a real HTTP server on a free local port, for the command run
as a process, under a pseudo-terminal).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

WORKFLOW_ID = "wf_" + "c" * 32
KEY = "trb_test_key_not_a_real_one"
ANSWER = "The Volga is the longest river of Europe: 3530 km, about 2193 miles."
QUESTION = "Kilometres or miles?"
DRAFT = "The Volga is the longest river"
"""What the synthesizer's live deltas carry before the answer is complete."""
_ANSWER_WAIT_S = 30.0


def _step(step_id: str, index: int, title: str) -> dict[str, Any]:
    return {"step_id": step_id, "index": index, "title": title, "instruction": title}


STEPS = [_step("s1", 0, "Find the longest river"), _step("s2", 1, "Convert to miles")]


def completed_story(*, ask: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """A two-step workflow whose second step calls the calculator; ``ask``: it asks first."""
    usage = {"prompt_tokens": 100, "completion_tokens": 20}
    story: list[tuple[str, dict[str, Any]]] = [
        ("workflow.requested", {"task": "Longest river in miles"}),
        ("plan.created", {"steps": STEPS}),
        ("step.dispatched", {"step": STEPS[0]}),
        ("step.started", {"step_id": "s1", "attempt": 1}),
        ("llm.called", _llm_call("s1", usage)),
        ("step.completed", {"step_id": "s1", "result": "The Volga, 3530 km", "iterations": 1}),
        ("step.dispatched", {"step": STEPS[1]}),
        ("step.started", {"step_id": "s2", "attempt": 1}),
    ]
    if ask:
        story.append(
            (
                "input.requested",
                {
                    "request_id": "rq_1",
                    "step_id": "s2",
                    "question": QUESTION,
                    "choices": ["kilometres", "miles"],
                    "expires_at": "2026-11-30T12:00:00Z",
                },
            )
        )
        # What the gateway logs once the answer is taken (the story's is always "miles").
        story.append(
            (
                "input.answered",
                {"request_id": "rq_1", "step_id": "s2", "answer": "miles", "source": "http"},
            )
        )
    story += [
        ("llm.called", _llm_call("s2", usage)),
        (
            "tool.called",
            {
                "role": "agent",
                "step_id": "s2",
                "name": "calculator",
                "call_id": "c1",
                "sequence": 1,
                "body": {"arguments": '{"expression": "3530 * 0.621371"}', "result": "2193.44"},
            },
        ),
        ("step.completed", {"step_id": "s2", "result": "2193 miles", "iterations": 2}),
        ("synthesis.started", {}),
        ("llm.delta", _delta(0, DRAFT[:12])),
        ("llm.delta", _delta(1, DRAFT[12:])),
        ("workflow.completed", {"result": ANSWER, "usage": usage}),
    ]
    return story


def _delta(seq: int, text: str) -> dict[str, Any]:
    """A piece of the synthesizer's answer as it streams (sent without an id)."""
    return {"step_id": None, "role": "synthesizer", "call": 1, "seq": seq, "text": text}


def failed_story() -> list[tuple[str, dict[str, Any]]]:
    error = {
        "code": "llm_auth_failed",
        "message": "the model refused the key",
        "error_class": "fatal",
    }
    return [
        ("workflow.requested", {"task": "Longest river in miles"}),
        ("plan.created", {"steps": STEPS[:1]}),
        ("step.dispatched", {"step": STEPS[0]}),
        ("step.started", {"step_id": "s1", "attempt": 1}),
        ("step.failed", {"step_id": "s1", "error": error, "attempt": 1}),
        ("workflow.failed", {"error": error}),
    ]


def _llm_call(step_id: str, usage: dict[str, int]) -> dict[str, Any]:
    return {
        "role": "agent",
        "step_id": step_id,
        "sequence": 1,
        "body": {"request": {"messages": []}, "response": {"model": "scripted", "usage": usage}},
    }


@dataclass
class FakeGateway:
    story: list[tuple[str, dict[str, Any]]] = field(default_factory=completed_story)
    delay_s: float = 0.0
    """Between two events, so that a live display has something to redraw."""
    started: list[dict[str, Any]] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    told_the_end: bool = False
    modes: list[str | None] = field(default_factory=list)
    """The ``mode`` each event stream asked for (None: none, the default)."""
    _answered: threading.Event = field(default_factory=threading.Event)

    # -- what it answers -------------------------------------------------------------

    def answer(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, Any]:
        """Status and JSON body, or (200, None) for the event stream."""
        if headers.get("authorization") != f"Bearer {KEY}":
            return 401, {"detail": "Invalid or revoked API key."}
        base = f"/v1/workflows/{WORKFLOW_ID}"
        if (method, path) == ("POST", "/v1/workflows"):
            self.started.append(json.loads(body))
            return 202, {"workflow_id": WORKFLOW_ID, "status": "pending", "links": _links()}
        if (method, path) == ("GET", base):
            return 200, self.workflow()
        if (method, path) == ("GET", base + "/events"):
            return 200, None
        if (method, path) == ("POST", base + "/input"):
            self.answers.append(json.loads(body))
            self._answered.set()
            return 202, {"workflow_id": WORKFLOW_ID, "request_id": self.answers[-1]["request_id"]}
        return 404, {"detail": "Workflow not found."}

    def workflow(self) -> dict[str, Any]:
        final_type, final = self.story[-1]
        if not self.told_the_end:
            return workflow_body("running")
        if final_type == "workflow.completed":
            return workflow_body("completed", result=final["result"], tokens=240)
        return workflow_body("failed", error=final.get("error"), tokens=120)

    def frames(self) -> Iterator[bytes]:
        for n, (event_type, data) in enumerate(self.story, start=1):
            payload = {"event_id": f"ev{n}", "type": event_type, "workflow_id": WORKFLOW_ID, **data}
            if event_type.startswith("workflow.") and event_type != "workflow.requested":
                self.told_the_end = True
            position = "" if event_type == "llm.delta" else f"id: {n}-0\n"  # live: no id
            yield f"{position}event: {event_type}\ndata: {json.dumps(payload)}\n\n".encode()

    def waits_after(self, frame: bytes) -> bool:
        return b"event: input.requested\n" in frame

    # -- in-process ------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            self.modes.append(request.url.params.get("mode"))
        status, body = self.answer(
            request.method, request.url.path, request.headers, await request.aread()
        )
        if body is None:
            return httpx.Response(
                200, headers={"content-type": "text/event-stream"}, stream=_Frames(self)
            )
        return httpx.Response(status, json=body)

    # -- as a process would reach it -------------------------------------------------

    @contextlib.contextmanager
    def serving(self) -> Iterator[str]:
        """A real HTTP server on 127.0.0.1; its base URL."""
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._serve(b"")

            def do_POST(self) -> None:
                self._serve(self.rfile.read(int(self.headers.get("content-length", 0))))

            def _serve(self, body: bytes) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                path = self.path.split("?")[0]
                status, answer = gateway.answer(self.command, path, headers, body)
                if answer is None:
                    self._stream()
                    return
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                self.end_headers()
                for frame in gateway.frames():
                    time.sleep(gateway.delay_s)
                    self.wfile.write(frame)
                    self.wfile.flush()
                    if gateway.waits_after(frame):
                        gateway._answered.wait(_ANSWER_WAIT_S)
                self.close_connection = True

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            self._answered.set()
            server.shutdown()
            server.server_close()


class _Frames(httpx.AsyncByteStream):
    def __init__(self, gateway: FakeGateway) -> None:
        self._gateway = gateway

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for frame in self._gateway.frames():
            yield frame
            if self._gateway.waits_after(frame):
                await _until(self._gateway._answered)


async def _until(answered: threading.Event) -> None:
    await asyncio.to_thread(answered.wait, _ANSWER_WAIT_S)


def _links() -> dict[str, str]:
    base = f"/v1/workflows/{WORKFLOW_ID}"
    return {"self": base, "events": base + "/events", "calls": base + "/calls"}


def workflow_body(
    status: str, *, result: str | None = None, error: Any = None, tokens: int = 0
) -> dict[str, Any]:
    return {
        "workflow_id": WORKFLOW_ID,
        "tenant_id": "acme",
        "status": status,
        "task": "Longest river in miles",
        "created_at": "2026-11-30T11:00:00Z",
        "updated_at": "2026-11-30T11:00:05Z",
        "steps": [],
        "result": result,
        "error": error,
        "usage": {
            "prompt_tokens": tokens - 40 if tokens else 0,
            "completion_tokens": 40 if tokens else 0,
            "total_tokens": tokens,
        },
        "budget": {
            "limit_tokens": 10_000,
            "used_tokens": tokens,
            "limit_cost_usd": 1.0,
            "used_cost_usd": 0.0123,
        },
        "links": _links(),
    }
