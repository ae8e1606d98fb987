"""The SDK against the real gateway app (over the in-memory twins): every call a user makes."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from tests.support.gateway_twins import gateway_over_twins
from tests.support.keys import issue
from tributary_client import (
    AsyncTributary,
    AuthenticationError,
    ConflictError,
    LLMCall,
    NotFoundError,
    PermissionDeniedError,
    StreamToken,
    ToolCall,
    Tributary,
    ValidationError,
    WorkflowStatus,
)
from tributary_gateway.settings import GatewaySettings
from tributary_shared.core import machine
from tributary_shared.core.access import Scope
from tributary_shared.core.events import (
    LLMCallBody,
    LLMCalled,
    LLMRequestRecord,
    LLMResponseRecord,
    ToolCallBody,
    ToolCalled,
    WorkflowCancelled,
    WorkflowRequested,
)
from tributary_shared.twins import MemoryApiKeyStore, MemoryPublisher, MemoryWorkflowStore

BASE = "http://gateway"


@pytest.fixture
def store() -> MemoryWorkflowStore:
    return MemoryWorkflowStore()


@pytest.fixture
def keys() -> MemoryApiKeyStore:
    return MemoryApiKeyStore()


@pytest.fixture
async def http(
    store: MemoryWorkflowStore, keys: MemoryApiKeyStore
) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_over_twins(
        store=store,
        publisher=MemoryPublisher(),
        keys=keys,
        settings=GatewaySettings(sse_ping_s=0.5),
    ) as client:
        yield client


@pytest.fixture
async def client(http: httpx.AsyncClient, keys: MemoryApiKeyStore) -> AsyncTributary:
    return AsyncTributary(BASE, await issue(keys, "acme"), http_client=http)


async def test_start_get_list_cancel_stream_and_wait(client: AsyncTributary) -> None:
    started = await client.start(
        "Compare three databases",
        max_steps=3,
        token_budget=5000,
        metadata={"team": "search"},
        idempotency_key="first-try",
    )
    assert started.status is WorkflowStatus.PENDING
    assert not started.replayed
    again = await client.start(
        "Compare three databases",
        max_steps=3,
        token_budget=5000,
        metadata={"team": "search"},
        idempotency_key="first-try",
    )
    assert (again.workflow_id, again.replayed) == (started.workflow_id, True)
    others = [(await client.start(f"task {n}")).workflow_id for n in range(2)]

    workflow = await client.get(started.workflow_id)
    assert workflow.tenant_id == "acme"
    assert workflow.options["max_steps"] == 3
    assert workflow.options["metadata"] == {"team": "search"}
    assert workflow.options["token_budget"] == 5000
    assert not workflow.terminal

    page = await client.list(limit=2)
    assert [w.workflow_id for w in page.workflows] == others[::-1]  # newest first
    assert page.next_cursor is not None
    listed = [w.workflow_id async for w in client.iter_workflows(page_size=1)]
    assert listed == [*others[::-1], started.workflow_id]

    cancelled = await client.cancel(started.workflow_id, reason="enough")
    assert (cancelled.status, cancelled.reason) == (WorkflowStatus.CANCELLED, "enough")
    with pytest.raises(ConflictError) as conflict:
        await client.cancel(started.workflow_id)
    assert (conflict.value.status, conflict.value.code) == (409, "conflict")
    assert "already ended" in conflict.value.detail

    events = [event async for event in client.stream(started.workflow_id)]
    assert [event.type for event in events] == ["workflow.requested", "workflow.cancelled"]
    assert events[-1].data["reason"] == "enough"
    resumed = [e async for e in client.stream(started.workflow_id, last_event_id=events[0].id)]
    assert resumed == events[1:]

    final = await client.wait(started.workflow_id, timeout=10)
    assert final.status is WorkflowStatus.CANCELLED
    assert final.terminal


async def test_wait_follows_a_running_workflow_to_its_end(
    client: AsyncTributary, store: MemoryWorkflowStore
) -> None:
    started = await client.start("a long one")
    waiting = asyncio.create_task(client.wait(started.workflow_id, timeout=30))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await store.apply(machine.cancel(WorkflowCancelled(workflow_id=started.workflow_id)))
    final = await asyncio.wait_for(waiting, timeout=20)
    assert final.status is WorkflowStatus.CANCELLED


async def test_the_gateways_refusals_become_typed_errors(
    client: AsyncTributary, http: httpx.AsyncClient, keys: MemoryApiKeyStore
) -> None:
    with pytest.raises(NotFoundError) as missing:
        await client.get("wf_" + "0" * 32)
    assert missing.value.status == 404
    with pytest.raises(ValidationError) as invalid:
        await client.start("t", max_steps=0)
    assert "max_steps" in invalid.value.detail
    with pytest.raises(AuthenticationError):
        await AsyncTributary(BASE, "trb_not_a_key", http_client=http).list()
    reader = AsyncTributary(BASE, await issue(keys, "acme", scopes=[Scope.READ]), http_client=http)
    with pytest.raises(PermissionDeniedError):
        await reader.start("t")
    with pytest.raises(PermissionDeniedError):
        await client.create_key("beta")  # not an admin key


async def test_calls_are_read_over_every_page(
    client: AsyncTributary, store: MemoryWorkflowStore
) -> None:
    workflow_id = f"wf_{uuid.uuid4().hex}"
    await store.create_workflow(
        WorkflowRequested(workflow_id=workflow_id, tenant_id="acme", task="t"),
        deadline_at=time.time() + 600,
    )
    where = {"workflow_id": workflow_id, "tenant_id": "acme", "started_at": datetime.now(UTC)}
    for step in ("s1", "s2"):
        llm = LLMCalled(
            **where,
            role="agent",
            step_id=step,
            sequence=1,
            duration_ms=3,
            body=LLMCallBody(
                request=LLMRequestRecord(messages=({"role": "user", "content": step},)),
                response=LLMResponseRecord(content="ok", model="m"),
            ),
        )
        tool = ToolCalled(
            **where,
            role="agent",
            step_id=step,
            sequence=1,
            duration_ms=1,
            call_id="c1",
            name="lookup",
            body=ToolCallBody(arguments="{}", result=f"result of {step}"),
        )
        assert await store.write_notices(workflow_id, [llm, tool])

    calls = [call async for call in client.calls(workflow_id, page_size=1)]
    assert [(type(c), c.step_id) for c in calls] == [
        (LLMCall, "s1"),
        (ToolCall, "s1"),
        (LLMCall, "s2"),
        (ToolCall, "s2"),
    ]
    first = calls[0]
    assert isinstance(first, LLMCall)
    assert first.body is not None
    assert first.body.request.messages == [{"role": "user", "content": "s1"}]
    only_s2 = [call async for call in client.calls(workflow_id, step_id="s2")]
    assert [c.step_id for c in only_s2] == ["s2", "s2"]
    tool_of_s2 = only_s2[1]
    assert isinstance(tool_of_s2, ToolCall)
    assert tool_of_s2.body is not None
    assert tool_of_s2.body.result == "result of s2"


async def test_admin_keys_issue_list_and_revoke_keys(
    http: httpx.AsyncClient, keys: MemoryApiKeyStore
) -> None:
    admin = AsyncTributary(BASE, await issue(keys, "ops", scopes=[Scope.ADMIN]), http_client=http)
    created = await admin.create_key("beta", scopes=["read"], label="dashboards")
    assert created.key
    assert created.scopes == ["read"]
    assert created.label == "dashboards"
    listed = await admin.list_keys(tenant="beta")
    assert [key.key_id for key in listed] == [created.key_id]
    assert "key" not in listed[0].model_dump()

    beta = AsyncTributary(BASE, created.key, http_client=http)
    assert (await beta.list()).workflows == []
    await admin.revoke_key(created.key_id)
    with pytest.raises(AuthenticationError):
        await beta.list()
    with pytest.raises(NotFoundError):
        await admin.revoke_key(created.key_id)


async def test_a_stream_token_opens_the_event_stream_without_the_key(
    client: AsyncTributary, http: httpx.AsyncClient, store: MemoryWorkflowStore
) -> None:
    workflow_id = await _ended(store)

    issued = await client.stream_token(workflow_id)

    assert isinstance(issued, StreamToken)
    assert issued.expires_at > datetime.now(UTC)
    assert issued.token not in repr(issued)  # a credential: kept out of printed models
    streamed = await http.get(issued.stream_url)  # this client sends no key of its own
    assert streamed.status_code == 200
    assert "event: workflow.cancelled" in streamed.text


def test_the_sync_client_asks_for_a_stream_token() -> None:
    seen: list[httpx.Request] = []
    answer = {
        "token": "trb_st_abc_def",
        "expires_at": "2026-11-30T10:05:00Z",
        "stream_url": "/v1/workflows/wf_1/events?token=trb_st_abc_def",
    }

    def gateway(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json=answer)

    with Tributary(BASE, "k", transport=httpx.MockTransport(gateway)) as sync_client:
        issued = sync_client.stream_token("wf_1")

    assert (seen[0].method, seen[0].url.path) == ("POST", "/v1/workflows/wf_1/stream-token")
    assert seen[0].headers["authorization"] == "Bearer k"
    assert issued.stream_url == answer["stream_url"]
    assert issued.expires_at == datetime(2026, 11, 30, 10, 5, tzinfo=UTC)


async def _ended(store: MemoryWorkflowStore) -> str:
    workflow_id = f"wf_{uuid.uuid4().hex}"
    await store.create_workflow(
        WorkflowRequested(workflow_id=workflow_id, tenant_id="acme", task="t"),
        deadline_at=time.time() + 600,
    )
    await store.apply(machine.cancel(WorkflowCancelled(workflow_id=workflow_id)))
    return workflow_id
