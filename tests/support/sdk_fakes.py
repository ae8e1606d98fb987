"""A fake gateway event log behind ``httpx.MockTransport``, for the SDK's stream tests.

It serves ``GET /v1/workflows/{id}/events`` from a fixed log, honouring
``Last-Event-ID``, and can be told to drop a connection after some events
(mid-way through the next one) or to answer with an error first.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

WORKFLOW_ID = "wf_" + "a" * 32

LOG: list[tuple[str, str]] = [
    ("1-0", "workflow.requested"),
    ("2-0", "plan.created"),
    ("3-0", "step.dispatched"),
    ("4-0", "step.started"),
    ("5-0", "step.completed"),
    ("6-0", "synthesis.started"),
    ("7-0", "workflow.completed"),
]


def frame(event_id: str, event_type: str) -> bytes:
    data = json.dumps({"event_id": f"ev-{event_id}", "type": event_type})
    return f"event: {event_type}\r\ndata: {data}\r\nid: {event_id}\r\n\r\n".encode()


def position(event_id: str) -> tuple[int, int]:
    ms, seq = event_id.split("-")
    return int(ms), int(seq)


class DroppedStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that sends its chunks, then fails as a reset connection would."""

    def __init__(self, chunks: list[bytes], *, drop: bool) -> None:
        self.chunks = chunks
        self.drop = drop

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        if self.drop:
            raise httpx.RemoteProtocolError("peer closed connection without a complete body")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.drop:
            raise httpx.RemoteProtocolError("peer closed connection without a complete body")


@dataclass
class FakeEventLog:
    """Per connection, ``drops`` says how many events to send before the connection
    drops, ``ends`` how many before the server ends the stream cleanly (None: all)."""

    drops: list[int | None] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    errors: list[httpx.Response] = field(default_factory=list)
    resumed_from: list[str | None] = field(default_factory=list)
    workflow: dict[str, Any] = field(default_factory=dict)

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            return self.events(request)
        if request.url.path == f"/v1/workflows/{WORKFLOW_ID}":
            return httpx.Response(200, json=self.workflow or workflow_body("completed"))
        return httpx.Response(404, json={"detail": "not here"})

    def events(self, request: httpx.Request) -> httpx.Response:
        after = request.headers.get("Last-Event-ID")
        self.resumed_from.append(after)
        if self.errors:
            return self.errors.pop(0)
        pending = [e for e in LOG if after is None or position(e[0]) > position(after)]
        if self.ends:
            return event_stream([frame(*event) for event in pending[: self.ends.pop(0)]])
        limit = self.drops.pop(0) if self.drops else None
        sent = pending if limit is None else pending[:limit]
        chunks = [frame(*event) for event in sent]
        if limit is not None and limit < len(pending):
            chunks.append(frame(*pending[limit])[:20])  # half an event, then the drop
        return event_stream(chunks, drop=limit is not None)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)


def event_stream(chunks: list[bytes], *, drop: bool = False) -> httpx.Response:
    return httpx.Response(
        200, headers={"content-type": "text/event-stream"}, stream=DroppedStream(chunks, drop=drop)
    )


def workflow_body(status: str) -> dict[str, Any]:
    links = {
        "self": f"/v1/workflows/{WORKFLOW_ID}",
        "events": f"/v1/workflows/{WORKFLOW_ID}/events",
        "calls": f"/v1/workflows/{WORKFLOW_ID}/calls",
    }
    return {
        "workflow_id": WORKFLOW_ID,
        "tenant_id": "acme",
        "status": status,
        "task": "t",
        "options": {},
        "created_at": "2026-01-01T00:00:00+00:00",
        "updated_at": "2026-01-01T00:00:01+00:00",
        "steps": [],
        "result": "done" if status == "completed" else None,
        "partial": False,
        "error": None,
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        "budget": {
            "limit_tokens": None,
            "used_tokens": 3,
            "limit_cost_usd": None,
            "used_cost_usd": 0.0,
            "exhausted": False,
            "on_exhausted": "partial",
        },
        "links": links,
    }
