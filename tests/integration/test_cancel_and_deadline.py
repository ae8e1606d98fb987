"""Cancellation and deadlines across the real services."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.support.client import GatewayClient
from tributary_scripted_llm import ScriptedLLMAdmin

pytestmark = pytest.mark.integration


async def test_cancelling_stops_running_steps_and_their_llm_calls_promptly(
    gateway: GatewayClient, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    llm_admin.add_rule(contains=marker, has_tools=True, responses=[{"hang": True}])
    workflow_id = await gateway.start(f"Part one {marker}; part two")
    await gateway.wait_for_status(workflow_id, "running")
    await asyncio.sleep(0.5)  # the steps' LLM calls are in flight
    started = time.monotonic()
    response = await gateway.http.post(
        f"/v1/workflows/{workflow_id}/cancel", json={"reason": "changed my mind"}
    )
    assert response.status_code == 200
    assert response.json() == {
        "workflow_id": workflow_id,
        "status": "cancelled",
        "reason": "changed my mind",
    }
    events = await gateway.follow(workflow_id)
    assert events[-1].type == "workflow.cancelled"
    assert events[-1].data["reason"] == "changed my mind"
    assert time.monotonic() - started < 5
    state = await gateway.get(workflow_id)
    assert state["status"] == "cancelled"
    assert all(s["status"] != "completed" for s in state["steps"])
    # No step result arrives after the cancellation.
    await asyncio.sleep(1)
    assert [e.type for e in await gateway.follow(workflow_id)] == [e.type for e in events]


async def test_a_workflow_cancelled_while_planning_never_runs_steps(
    gateway: GatewayClient, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    llm_admin.add_rule(
        contains=marker, schema_name="tributary_plan", responses=[{"delay_ms": 1500}]
    )
    workflow_id = await gateway.start(f"Slow plan {marker}")
    await gateway.wait_for_status(workflow_id, "planning")
    assert (await gateway.http.post(f"/v1/workflows/{workflow_id}/cancel")).status_code == 200
    await asyncio.sleep(2.5)
    state = await gateway.get(workflow_id)
    assert state["status"] == "cancelled"
    assert state["steps"] == []
    types = [e.type for e in await gateway.follow(workflow_id)]
    assert "plan.created" not in types
    assert types[-1] == "workflow.cancelled"


async def test_cancelling_an_ended_or_unknown_workflow_is_refused_clearly(
    gateway: GatewayClient, marker: str
) -> None:
    workflow_id, _, _ = await gateway.run(f"Say hello {marker}")
    ended = await gateway.http.post(f"/v1/workflows/{workflow_id}/cancel")
    assert ended.status_code == 409
    assert ended.json()["detail"] == "workflow has already ended: completed"
    unknown = await gateway.http.post(f"/v1/workflows/wf_{'0' * 32}/cancel")
    assert unknown.status_code == 404


async def test_a_workflow_past_its_deadline_fails_with_a_timeout(
    gateway: GatewayClient, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    llm_admin.add_rule(contains=marker, has_tools=True, responses=[{"hang": True}])
    started = time.monotonic()
    _, events, state = await gateway.run(f"Too slow {marker}", options={"deadline_s": 2})
    assert state["status"] == "failed"
    assert state["error"] == {
        "code": "deadline_exceeded",
        "message": "the workflow did not finish within its deadline of 2s",
        "error_class": "logic",
        "retryable": False,
    }
    assert events[-1].type == "workflow.failed"
    assert time.monotonic() - started < 10
