"""The events endpoint's ``mode``: which logged events a stream sends, the live deltas
of ``mode=tokens`` (without an SSE id), and resuming with ``Last-Event-ID`` in it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from tests.support.gateway_twins import gateway_over_twins
from tests.support.keys import bearer, issue
from tributary_devstack.sse import SseEvent, SseParser
from tributary_gateway.settings import GatewaySettings
from tributary_shared.core import machine
from tributary_shared.core.deltas import LLMDelta
from tributary_shared.core.events import (
    EventEnvelope,
    LLMCallBody,
    LLMCalled,
    LLMRequestRecord,
    ToolCallBody,
    ToolCalled,
    WorkflowCancelled,
    WorkflowRequested,
)
from tributary_shared.core.recording import spill
from tributary_shared.twins import (
    MemoryApiKeyStore,
    MemoryDeltaChannel,
    MemoryPublisher,
    MemoryWorkflowStore,
)

LARGE_RESULT = "row " * 1000


@pytest.fixture
def store() -> MemoryWorkflowStore:
    return MemoryWorkflowStore()


@pytest.fixture
def deltas() -> MemoryDeltaChannel:
    return MemoryDeltaChannel()


@pytest.fixture
async def gateway(
    store: MemoryWorkflowStore, deltas: MemoryDeltaChannel
) -> AsyncIterator[httpx.AsyncClient]:
    keys = MemoryApiKeyStore()
    async with gateway_over_twins(
        store=store,
        publisher=MemoryPublisher(),
        keys=keys,
        settings=GatewaySettings(sse_ping_s=0.5),
        deltas=deltas,
    ) as client:
        client.headers.update(bearer(await issue(keys, "acme")))
        yield client


async def started(store: MemoryWorkflowStore) -> str:
    workflow_id = f"wf_{uuid.uuid4().hex}"
    await store.create_workflow(
        WorkflowRequested(workflow_id=workflow_id, tenant_id="acme", task="t"),
        deadline_at=time.time() + 600,
    )
    return workflow_id


def tool_call(workflow_id: str, *, result: str, sequence: int) -> ToolCalled:
    return ToolCalled(
        workflow_id=workflow_id,
        tenant_id="acme",
        role="agent",
        step_id="s1",
        sequence=sequence,
        started_at=datetime.now(UTC),
        duration_ms=3,
        call_id=f"call_{sequence}",
        name="fetch_url",
        body=ToolCallBody(arguments='{"url": "https://example.org"}', result=result),
    )


def llm_call(workflow_id: str) -> LLMCalled:
    return LLMCalled(
        workflow_id=workflow_id,
        tenant_id="acme",
        role="agent",
        step_id="s1",
        sequence=1,
        started_at=datetime.now(UTC),
        duration_ms=5,
        body=LLMCallBody(request=LLMRequestRecord.model_validate({"messages": []})),
    )


async def log_calls(store: MemoryWorkflowStore, workflow_id: str) -> None:
    """A small tool call, an LLM call, and a tool call whose body travels in parts."""
    large, parts = spill(
        tool_call(workflow_id, result=LARGE_RESULT, sequence=2),
        inline_max_bytes=1000,
        part_bytes=1500,
    )
    assert len(parts) == 3, "the large record is cut into parts"
    logged: list[EventEnvelope] = [
        tool_call(workflow_id, result="ok", sequence=1),
        llm_call(workflow_id),
        *parts,
        large,
    ]
    await store.write_notices(workflow_id, logged)


def parsed(body: str) -> list[SseEvent]:
    parser = SseParser()
    events = (parser.feed(line) for line in body.splitlines())
    return [event for event in events if event is not None]


async def test_an_unknown_mode_is_refused_like_any_bad_parameter(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore
) -> None:
    workflow_id = await started(store)
    refused = await gateway.get(f"/v1/workflows/{workflow_id}/events", params={"mode": "all"})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["query", "mode"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["workflow.requested", "workflow.cancelled"]),
        ({"mode": "lifecycle"}, ["workflow.requested", "workflow.cancelled"]),
        (
            {"mode": "tools"},
            ["workflow.requested", "tool.called", "tool.called", "workflow.cancelled"],
        ),
        (
            {"mode": "tokens"},
            ["workflow.requested", "tool.called", "tool.called", "workflow.cancelled"],
        ),
        (
            {"calls": "true"},
            ["workflow.requested", "tool.called", "llm.called"]
            + ["call.payload"] * 3
            + ["tool.called", "workflow.cancelled"],
        ),
        (
            {"mode": "tools", "calls": "true"},
            ["workflow.requested", "tool.called", "llm.called"]
            + ["call.payload"] * 3
            + ["tool.called", "workflow.cancelled"],
        ),
    ],
)
async def test_each_mode_sends_its_share_of_the_log(
    gateway: httpx.AsyncClient,
    store: MemoryWorkflowStore,
    params: dict[str, str],
    expected: list[str],
) -> None:
    workflow_id = await started(store)
    await log_calls(store, workflow_id)
    await store.apply(machine.cancel(WorkflowCancelled(workflow_id=workflow_id)))
    response = await gateway.get(f"/v1/workflows/{workflow_id}/events", params=params)
    events = parsed(response.text)
    assert [e.event for e in events] == expected
    assert all(e.id is not None for e in events), "every logged event keeps its position"


async def test_in_tools_mode_a_large_tool_call_comes_whole(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore
) -> None:
    workflow_id = await started(store)
    await log_calls(store, workflow_id)
    await store.apply(machine.cancel(WorkflowCancelled(workflow_id=workflow_id)))
    response = await gateway.get(f"/v1/workflows/{workflow_id}/events", params={"mode": "tools"})
    calls = [json.loads(e.data) for e in parsed(response.text) if e.event == "tool.called"]
    assert [c["body"]["result"] for c in calls] == ["ok", LARGE_RESULT]
    assert all(c["payload"] is None for c in calls)


async def until_listened(deltas: MemoryDeltaChannel, workflow_id: str) -> None:
    for _ in range(1000):
        if await deltas.listened(workflow_id):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the stream never listened to the workflow's deltas")


def delta(workflow_id: str, seq: int, text: str) -> LLMDelta:
    return LLMDelta(workflow_id=workflow_id, step_id="s1", role="agent", call=1, seq=seq, text=text)


@pytest.mark.parametrize("mode", ["lifecycle", "tools"])
async def test_only_tokens_mode_listens_to_deltas(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, deltas: MemoryDeltaChannel, mode: str
) -> None:
    workflow_id = await started(store)
    streaming = asyncio.create_task(
        gateway.get(f"/v1/workflows/{workflow_id}/events", params={"mode": mode})
    )
    await asyncio.sleep(0.2)
    assert not await deltas.listened(workflow_id)
    await store.apply(machine.cancel(WorkflowCancelled(workflow_id=workflow_id)))
    response = await asyncio.wait_for(streaming, timeout=10)
    assert "llm.delta" not in response.text


async def test_tokens_mode_sends_live_deltas_without_ids_and_resumes_on_the_log(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, deltas: MemoryDeltaChannel
) -> None:
    workflow_id = await started(store)
    url = f"/v1/workflows/{workflow_id}/events"
    streaming = asyncio.create_task(gateway.get(url, params={"mode": "tokens"}))
    await until_listened(deltas, workflow_id)
    await deltas.publish([delta(workflow_id, 0, "Hello "), delta(workflow_id, 1, "world")])
    await store.write_notices(workflow_id, [tool_call(workflow_id, result="ok", sequence=1)])
    await store.apply(machine.cancel(WorkflowCancelled(workflow_id=workflow_id)))
    events = parsed((await asyncio.wait_for(streaming, timeout=10)).text)

    live = [e for e in events if e.event == "llm.delta"]
    assert "".join(json.loads(e.data)["text"] for e in live) == "Hello world"
    assert all(e.id is None for e in live), "a delta has no position in the log"
    logged = [e for e in events if e.event != "llm.delta"]
    assert [e.event for e in logged] == ["workflow.requested", "tool.called", "workflow.cancelled"]
    assert not await deltas.listened(workflow_id), "the stream stopped listening when it ended"

    # A client that received the first logged event resumes after it: the rest, once.
    resumed = await gateway.get(
        url, params={"mode": "tokens"}, headers={"Last-Event-ID": logged[0].id or ""}
    )
    again = [e for e in parsed(resumed.text) if e.event != "llm.delta"]
    assert [(e.event, e.id) for e in again] == [(e.event, e.id) for e in logged[1:]]


async def test_the_last_event_id_query_resumes_like_the_header_which_wins(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore
) -> None:
    """A new EventSource (say, on a fresh stream token) names where to resume in the URL."""
    workflow_id = await started(store)
    await store.write_notices(workflow_id, [tool_call(workflow_id, result="ok", sequence=1)])
    await store.apply(machine.cancel(WorkflowCancelled(workflow_id=workflow_id)))
    url = f"/v1/workflows/{workflow_id}/events"
    logged = parsed((await gateway.get(url, params={"mode": "tools"})).text)
    assert [e.event for e in logged] == ["workflow.requested", "tool.called", "workflow.cancelled"]

    by_query = parsed(
        (await gateway.get(url, params={"mode": "tools", "last_event_id": logged[0].id})).text
    )
    assert [(e.event, e.id) for e in by_query] == [(e.event, e.id) for e in logged[1:]]

    both = await gateway.get(
        url,
        params={"mode": "tools", "last_event_id": logged[0].id},
        headers={"Last-Event-ID": logged[1].id or ""},
    )
    assert [(e.event, e.id) for e in parsed(both.text)] == [(e.event, e.id) for e in logged[2:]]

    malformed = await gateway.get(url, params={"last_event_id": "yesterday"})
    assert malformed.status_code == 400
