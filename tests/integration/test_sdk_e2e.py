"""The Python SDK against the real services: its wait() rides out a real dropped connection.

The SDK reaches the gateway through a TCP proxy that the test cuts while the
workflow runs (its LLM calls are slowed so the cuts fall mid-workflow); the
events the SDK delivered are compared with the workflow's whole log.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from tests.support.client import GatewayClient
from tests.support.stack import RunningServices
from tests.support.tcp_proxy import cuttable_proxy
from tributary_client import (
    AsyncTributary,
    ConflictError,
    LLMCall,
    ToolCall,
    Tributary,
    WorkflowEvent,
    WorkflowStatus,
)
from tributary_scripted_llm import ScriptedLLMAdmin

pytestmark = pytest.mark.integration

LIFECYCLE = [
    "workflow.requested",
    "plan.created",
    "step.dispatched",
    "step.started",
    "step.completed",
    "synthesis.started",
    "workflow.completed",
]
# Cut the connection on these: the next event is a slowed LLM call away.
CUT_AFTER = {"workflow.requested", "step.started"}


def slow_multiplication(llm_admin: ScriptedLLMAdmin, marker: str, *, delay_ms: int) -> None:
    llm_admin.add_rule(
        contains=marker,
        schema_name="tributary_plan",
        responses=[
            {
                "delay_ms": delay_ms,
                "json": {"steps": [{"title": "Multiply", "instruction": f"12 * 12 {marker}"}]},
            }
        ],
    )
    llm_admin.add_rule(
        contains=marker,
        has_tools=True,
        has_tool_result=False,
        responses=[
            {
                "delay_ms": delay_ms,
                "tool_calls": [{"name": "calculator", "arguments": {"expression": "12 * 12"}}],
            }
        ],
    )


def events_requests(sent: list[bytes]) -> list[str]:
    """The head of each events request the proxy carried, as text."""
    text = [chunk.decode("latin-1") for chunk in sent]
    return [head for head in text if re.match(r"GET /v1/workflows/wf_\w+/events", head)]


def last_event_id(head: str) -> str | None:
    found = re.search(r"^last-event-id: (\S+)\r$", head, re.IGNORECASE | re.MULTILINE)
    return found[1] if found else None


async def test_wait_survives_a_dropped_connection_without_missing_or_repeating_an_event(
    gateway: GatewayClient,
    services: RunningServices,
    api_key: str,
    llm_admin: ScriptedLLMAdmin,
    marker: str,
) -> None:
    slow_multiplication(llm_admin, marker, delay_ms=1500)
    seen: list[WorkflowEvent] = []
    async with cuttable_proxy(services.gateway_url) as proxy:

        def cut_on_cue(event: WorkflowEvent) -> None:
            seen.append(event)
            if event.type in CUT_AFTER:
                proxy.cut()

        async with AsyncTributary(proxy.url, api_key) as client:
            started = await client.start(f"What is 12 * 12? {marker}")
            final = await asyncio.wait_for(
                client.wait(started.workflow_id, timeout=120, on_event=cut_on_cue), timeout=150
            )
            calls = [call async for call in client.calls(started.workflow_id)]

    assert final.status is WorkflowStatus.COMPLETED, final
    assert final.result is not None
    assert "144" in final.result
    # Exactly the workflow's log, once each, in order, though the connection was cut twice.
    whole = await gateway.follow(started.workflow_id)
    assert [(e.id, e.type) for e in seen] == [(e.id, e.type) for e in whole]
    assert [e.type for e in seen] == LIFECYCLE
    requests = events_requests(proxy.requests)
    assert len(requests) == 3, requests
    by_type = {event.type: event.id for event in seen}
    assert [last_event_id(head) for head in requests] == [
        None,
        by_type["workflow.requested"],
        by_type["step.started"],
    ]
    # The calls it made are readable through the SDK too, typed.
    roles = sorted(call.role for call in calls if isinstance(call, LLMCall))
    assert roles == ["agent", "agent", "planner", "synthesizer"]
    assert [call.name for call in calls if isinstance(call, ToolCall)] == ["calculator"]


async def test_start_get_list_cancel_with_the_blocking_client(
    services: RunningServices, api_key: str, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    slow_multiplication(llm_admin, marker, delay_ms=5000)

    def scenario() -> None:
        with Tributary(services.gateway_url, api_key) as client:
            started = client.start(
                f"What is 12 * 12? {marker}", max_steps=2, idempotency_key=marker
            )
            assert client.start(
                f"What is 12 * 12? {marker}", max_steps=2, idempotency_key=marker
            ).replayed
            workflow = client.get(started.workflow_id)
            assert workflow.status in {WorkflowStatus.PENDING, WorkflowStatus.PLANNING}
            assert workflow.options["max_steps"] == 2
            listed = [w.workflow_id for w in client.list(limit=20).workflows]
            assert started.workflow_id in listed
            cancelled = client.cancel(started.workflow_id, reason="changed my mind")
            assert cancelled.status is WorkflowStatus.CANCELLED
            with pytest.raises(ConflictError):
                client.cancel(started.workflow_id)
            final = client.wait(started.workflow_id, timeout=60)
            assert final.status is WorkflowStatus.CANCELLED

    await asyncio.to_thread(scenario)
