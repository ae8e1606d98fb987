"""Across the real services: every LLM call and tool call of a workflow is recorded.

The records are counted against what the scripted LLM server received for the
workflow: each HTTP request it saw is one try of one recorded call.
"""

from __future__ import annotations

import pytest

from tests.support.client import GatewayClient
from tributary_scripted_llm import ScriptedLLMAdmin

pytestmark = pytest.mark.integration


async def test_calls_and_tries_are_recorded_as_the_endpoint_saw_them(
    gateway: GatewayClient, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    llm_admin.add_rule(
        contains=marker,
        schema_name="tributary_plan",
        responses=[
            {"status": 429, "headers": {"Retry-After": "1"}},
            {"json": {"steps": [{"title": "Multiply", "instruction": f"3 * 7 {marker}"}]}},
        ],
    )
    llm_admin.add_rule(
        contains=marker,
        has_tools=True,
        has_tool_result=False,
        responses=[{"tool_calls": [{"name": "calculator", "arguments": {"expression": "3 * 7"}}]}],
    )
    workflow_id, _, state = await gateway.run(f"What is 3 * 7? {marker}")
    assert state["status"] == "completed", state

    response = await gateway.http.get(f"/v1/workflows/{workflow_id}/calls")
    assert response.status_code == 200, response.text
    calls = response.json()["calls"]
    llm_calls = [c for c in calls if c["type"] == "llm.called"]
    tool_calls = [c for c in calls if c["type"] == "tool.called"]

    seen = llm_admin.requests(contains=marker)
    assert sum(len(c["tries"]) for c in llm_calls) == len(seen)
    assert sorted(c["role"] for c in llm_calls) == ["agent", "agent", "planner", "synthesizer"]
    (planner,) = (c for c in llm_calls if c["role"] == "planner")
    assert [t["error"]["code"] if t["error"] else None for t in planner["tries"]] == [
        "llm_rate_limited",
        None,
    ]
    (tool,) = tool_calls
    assert tool["name"] == "calculator"
    assert tool["outcome"] == "ran"
    assert "21" in tool["body"]["result"]
    assert tool["step_id"] == state["steps"][0]["step_id"]

    # The default event stream stays as it was: lifecycle events only.
    plain = await gateway.http.get(f"/v1/workflows/{workflow_id}/events")
    assert "llm.called" not in plain.text
    assert "workflow.completed" in plain.text
