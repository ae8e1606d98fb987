"""The gateway shows a workflow's recorded calls: a page of whole records, or live in SSE."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from tests.support.gateway_twins import gateway_over_twins
from tests.support.keys import bearer, issue
from tributary_devstack.sse import SseParser
from tributary_gateway.settings import GatewaySettings
from tributary_shared.core import machine
from tributary_shared.core.events import (
    EventEnvelope,
    LLMCallBody,
    LLMCalled,
    LLMRequestRecord,
    LLMResponseRecord,
    ToolCallBody,
    ToolCalled,
    WorkflowCancelled,
    WorkflowRequested,
)
from tributary_shared.core.recording import spill
from tributary_shared.twins import MemoryApiKeyStore, MemoryPublisher, MemoryWorkflowStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def store() -> MemoryWorkflowStore:
    return MemoryWorkflowStore()


@pytest.fixture
def keys() -> MemoryApiKeyStore:
    return MemoryApiKeyStore()


@pytest.fixture
async def gateway(
    store: MemoryWorkflowStore, keys: MemoryApiKeyStore
) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_over_twins(
        store=store,
        publisher=MemoryPublisher(),
        keys=keys,
        settings=GatewaySettings(sse_ping_s=0.5),
    ) as client:
        client.headers.update(bearer(await issue(keys, "acme")))
        yield client


async def workflow_with_calls(store: MemoryWorkflowStore, *, big: str = "") -> str:
    """A workflow whose log holds two steps' calls, one with a body sent in parts."""
    workflow_id = f"wf_{uuid.uuid4().hex}"
    await store.create_workflow(
        WorkflowRequested(workflow_id=workflow_id, tenant_id="acme", task="t"),
        deadline_at=time.time() + 600,
    )
    where = {"workflow_id": workflow_id, "tenant_id": "acme", "started_at": NOW}
    events: list[EventEnvelope] = []
    for step in ("s1", "s2"):
        events.append(
            LLMCalled(
                **where,
                role="agent",
                step_id=step,
                iteration=1,
                sequence=1,
                duration_ms=3,
                body=LLMCallBody(
                    request=LLMRequestRecord(messages=({"role": "user", "content": step},)),
                    response=LLMResponseRecord(content=None, model="m"),
                ),
            )
        )
        sent, parts = spill(
            ToolCalled(
                **where,
                role="agent",
                step_id=step,
                iteration=1,
                sequence=1,
                duration_ms=1,
                call_id="c1",
                name="lookup",
                body=ToolCallBody(arguments="{}", result=big or f"result of {step}"),
            ),
            inline_max_bytes=10_000,
            part_bytes=4_000,
        )
        events.extend([*parts, sent])
    assert await store.write_notices(workflow_id, events)
    return workflow_id


async def test_calls_come_whole_in_order_a_page_at_a_time(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore
) -> None:
    page = "x" * 30_000
    workflow_id = await workflow_with_calls(store, big=page)
    first = await gateway.get(f"/v1/workflows/{workflow_id}/calls", params={"limit": 3})
    assert first.status_code == 200, first.text
    body = first.json()
    assert [(c["type"], c["step_id"]) for c in body["calls"]] == [
        ("llm.called", "s1"),
        ("tool.called", "s1"),
        ("llm.called", "s2"),
    ]
    assert body["calls"][1]["body"]["result"] == page  # joined from its parts
    assert body["calls"][1]["payload"] is None
    rest = await gateway.get(
        f"/v1/workflows/{workflow_id}/calls", params={"after": body["next_after"]}
    )
    assert [c["step_id"] for c in rest.json()["calls"]] == ["s2"]
    assert rest.json()["calls"][0]["body"]["result"] == page
    assert rest.json()["next_after"] is None


async def test_calls_of_one_step(gateway: httpx.AsyncClient, store: MemoryWorkflowStore) -> None:
    workflow_id = await workflow_with_calls(store)
    response = await gateway.get(f"/v1/workflows/{workflow_id}/calls", params={"step_id": "s2"})
    calls = response.json()["calls"]
    assert [(c["type"], c["step_id"]) for c in calls] == [
        ("llm.called", "s2"),
        ("tool.called", "s2"),
    ]
    assert calls[1]["body"]["result"] == "result of s2"


async def test_another_tenants_calls_are_not_found(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, keys: MemoryApiKeyStore
) -> None:
    workflow_id = await workflow_with_calls(store)
    other = bearer(await issue(keys, "globex"))
    response = await gateway.get(f"/v1/workflows/{workflow_id}/calls", headers=other)
    assert response.status_code == 404


@pytest.mark.parametrize("after", ["latest", "1-2-3", "-1"])
async def test_a_malformed_position_is_a_clear_422(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, after: str
) -> None:
    workflow_id = await workflow_with_calls(store)
    response = await gateway.get(f"/v1/workflows/{workflow_id}/calls", params={"after": after})
    assert response.status_code == 422
    assert "after" in response.text


def sse_types(body: str) -> list[str]:
    parser = SseParser()
    parsed = (parser.feed(line) for line in body.splitlines())
    return [event.event for event in parsed if event is not None]


async def test_the_event_stream_leaves_calls_out_unless_asked(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore
) -> None:
    workflow_id = await workflow_with_calls(store, big="y" * 30_000)
    await store.apply(machine.cancel(WorkflowCancelled(workflow_id=workflow_id)))
    plain = await gateway.get(f"/v1/workflows/{workflow_id}/events")
    assert sse_types(plain.text) == ["workflow.requested", "workflow.cancelled"]
    with_calls = await gateway.get(f"/v1/workflows/{workflow_id}/events", params={"calls": "true"})
    types = sse_types(with_calls.text)
    assert types[0] == "workflow.requested"
    assert types[-1] == "workflow.cancelled"
    assert types.count("llm.called") == 2
    assert types.count("tool.called") == 2
    assert "call.payload" in types
