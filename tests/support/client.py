"""A small async client for the gateway's HTTP API, as a user would call it."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import httpx

from tributary_devstack.sse import SseParser

TERMINAL = {"workflow.completed", "workflow.failed"}


@dataclass(frozen=True)
class StreamedEvent:
    id: str | None
    type: str
    data: dict[str, Any]


class GatewayClient:
    """Sends ``api_key`` with every request, as every client of the gateway must."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url, timeout=30, headers={"Authorization": f"Bearer {api_key}"}
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def start(self, task: str, **body: Any) -> str:
        response = await self.http.post("/v1/workflows", json={"task": task, **body})
        assert response.status_code == 202, response.text
        workflow_id: str = response.json()["workflow_id"]
        return workflow_id

    async def get(self, workflow_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/v1/workflows/{workflow_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def wait_for_status(self, workflow_id: str, status: str, *, within: float = 20) -> None:
        for _ in range(int(within / 0.05)):
            if (await self.get(workflow_id))["status"] == status:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"workflow {workflow_id} never reached {status}")

    async def follow(
        self, workflow_id: str, *, last_event_id: str | None = None, read_timeout: float = 90
    ) -> list[StreamedEvent]:
        """Every event until the stream ends (it ends after the terminal event)."""
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        parser = SseParser()
        events: list[StreamedEvent] = []
        async with self.http.stream(
            "GET", f"/v1/workflows/{workflow_id}/events", headers=headers, timeout=read_timeout
        ) as response:
            assert response.status_code == 200, await response.aread()
            async for line in response.aiter_lines():
                parsed = parser.feed(line)
                if parsed is not None:
                    events.append(StreamedEvent(parsed.id, parsed.event, json.loads(parsed.data)))
        return events

    async def follow_until(
        self, workflow_id: str, event_type: str, *, count: int = 1, within: float = 30
    ) -> list[StreamedEvent]:
        """Events from the start until ``count`` events of ``event_type`` have arrived."""
        parser = SseParser()
        events: list[StreamedEvent] = []
        async with asyncio.timeout(within):
            async with self.http.stream(
                "GET", f"/v1/workflows/{workflow_id}/events", timeout=within
            ) as response:
                async for line in response.aiter_lines():
                    parsed = parser.feed(line)
                    if parsed is None:
                        continue
                    events.append(StreamedEvent(parsed.id, parsed.event, json.loads(parsed.data)))
                    if sum(e.type == event_type for e in events) >= count:
                        break
        return events

    async def run(self, task: str, **body: Any) -> tuple[str, list[StreamedEvent], dict[str, Any]]:
        workflow_id = await self.start(task, **body)
        events = await self.follow(workflow_id)
        return workflow_id, events, await self.get(workflow_id)
