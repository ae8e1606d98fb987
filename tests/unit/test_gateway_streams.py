"""Event streams in the gateway: served through the fan-out, bounded per replica."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.gateway_twins import gateway_over_twins
from tests.support.keys import bearer, issue
from tributary_devstack.sse import SseParser
from tributary_gateway.settings import GatewaySettings
from tributary_gateway.streams import StreamSlots
from tributary_shared.core import machine
from tributary_shared.core.events import WorkflowCancelled, WorkflowRequested
from tributary_shared.twins import (
    MemoryApiKeyStore,
    MemoryPublisher,
    MemoryWorkflowStore,
)


@pytest.fixture
def store() -> MemoryWorkflowStore:
    return MemoryWorkflowStore()


@pytest.fixture
def slots() -> StreamSlots:
    return StreamSlots(2)


@pytest.fixture
async def gateway(
    store: MemoryWorkflowStore, slots: StreamSlots
) -> AsyncIterator[httpx.AsyncClient]:
    keys = MemoryApiKeyStore()
    async with gateway_over_twins(
        store=store,
        publisher=MemoryPublisher(),
        keys=keys,
        settings=GatewaySettings(sse_ping_s=0.5),
        streams=slots,
    ) as client:
        client.headers.update(bearer(await issue(keys, "acme")))
        yield client


async def pending(store: MemoryWorkflowStore) -> str:
    workflow_id = f"wf_{uuid.uuid4().hex}"
    await store.create_workflow(
        WorkflowRequested(workflow_id=workflow_id, tenant_id="acme", task="t"),
        deadline_at=time.time() + 600,
    )
    return workflow_id


def event_types(body: str) -> list[str]:
    parser = SseParser()
    parsed = (parser.feed(line) for line in body.splitlines())
    return [event.event for event in parsed if event is not None]


async def test_a_stream_follows_the_log_live_until_the_terminal_event(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, slots: StreamSlots
) -> None:
    workflow_id = await pending(store)
    streaming = asyncio.create_task(gateway.get(f"/v1/workflows/{workflow_id}/events"))
    for _ in range(1000):  # until connected: it holds a slot
        if slots.open == 1:
            break
        await asyncio.sleep(0.01)
    assert slots.open == 1
    await store.apply(machine.cancel(WorkflowCancelled(workflow_id=workflow_id)))
    response = await asyncio.wait_for(streaming, timeout=10)
    assert event_types(response.text) == ["workflow.requested", "workflow.cancelled"]
    assert slots.open == 0  # given back when the stream ended


async def test_streams_beyond_the_replicas_ceiling_get_429_with_retry_after(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, slots: StreamSlots
) -> None:
    workflow_id = await pending(store)
    assert slots.take()
    assert slots.take()  # two streams open: the ceiling
    refused = await gateway.get(f"/v1/workflows/{workflow_id}/events")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"].isdigit()
    slots.give_back()
    await store.apply(machine.cancel(WorkflowCancelled(workflow_id=workflow_id)))
    served = await gateway.get(f"/v1/workflows/{workflow_id}/events")
    assert served.status_code == 200
    assert event_types(served.text)[-1] == "workflow.cancelled"
