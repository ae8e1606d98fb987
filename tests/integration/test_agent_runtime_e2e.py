"""A misbehaving LLM, across the real services: every workflow ends, clearly and in budget."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.client import GatewayClient
from tributary_scripted_llm import ScriptedLLMAdmin

pytestmark = pytest.mark.integration


def plan(admin: ScriptedLLMAdmin, marker: str, *instructions: str) -> None:
    """Script the planner: one step per instruction, each tagged so rules can target it."""
    admin.add_rule(
        contains=marker,
        schema_name="tributary_plan",
        responses=[
            {
                "json": {
                    "steps": [
                        {"title": f"Part {i + 1}", "instruction": text}
                        for i, text in enumerate(instructions)
                    ]
                }
            }
        ],
    )


def tool_call(expression: str) -> dict[str, Any]:
    return {"tool_calls": [{"name": "calculator", "arguments": {"expression": expression}}]}


async def test_rate_limits_and_server_errors_are_ridden_out(
    gateway: GatewayClient, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    llm_admin.add_rule(
        contains=marker,
        schema_name="tributary_plan",
        repeat_last=False,
        responses=[{"status": 429, "headers": {"Retry-After": "1"}}],
    )
    llm_admin.add_rule(
        contains=marker,
        has_tools=True,
        repeat_last=False,
        responses=[{"status": 500}, {"status": 503}],
    )
    _, _, state = await gateway.run(f"What is 3 * 7? {marker}")
    assert state["status"] == "completed"
    assert "21" in state["result"]


async def test_a_model_that_repeats_the_same_call_is_stopped(
    gateway: GatewayClient, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    plan(llm_admin, marker, f"Add numbers {marker}-loop")
    llm_admin.add_rule(contains=f"{marker}-loop", has_tools=True, responses=[tool_call("1 + 1")])
    _, events, state = await gateway.run(f"Loop forever {marker}")
    assert state["status"] == "failed"
    [step] = state["steps"]
    assert step["error"]["code"] == "loop_detected"
    assert step["error"]["error_class"] == "logic"
    assert step["iterations"] == 4  # warned at the third identical call, stopped at the fourth
    assert state["error"]["code"] == "all_steps_failed"
    assert "repeating itself" in state["error"]["message"]
    assert events[-1].type == "workflow.failed"


async def test_an_a_b_a_b_cycle_is_stopped(
    gateway: GatewayClient, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    plan(llm_admin, marker, f"Alternate {marker}-cycle")
    llm_admin.add_rule(
        contains=f"{marker}-cycle",
        has_tools=True,
        responses=[tool_call("1 + 1"), tool_call("2 + 2")] * 10,
    )
    _, _, state = await gateway.run(f"Cycle {marker}")
    [step] = state["steps"]
    assert step["error"]["code"] == "loop_detected"
    assert "cycle" in step["error"]["message"]


async def test_malformed_tool_arguments_get_one_correction_then_fail_the_step(
    gateway: GatewayClient, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    plan(llm_admin, marker, f"Compute {marker}-bad-json")
    llm_admin.add_rule(
        contains=f"{marker}-bad-json",
        has_tools=True,
        responses=[{"tool_calls": [{"name": "calculator", "arguments": '{"expression": '}]}],
    )
    _, _, state = await gateway.run(f"Malformed {marker}")
    [step] = state["steps"]
    assert step["status"] == "failed"
    assert step["error"]["code"] == "tool_arguments_invalid"
    assert step["iterations"] == 2


async def test_an_invalid_api_key_fails_the_workflow_at_once(
    gateway: GatewayClient, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    plan(llm_admin, marker, f"First {marker}-auth", "Second part")
    llm_admin.add_rule(
        contains=f"{marker}-auth",
        has_tools=True,
        responses=[{"status": 401, "error": {"message": "Invalid key sk-leaked-123456"}}],
    )
    _, events, state = await gateway.run(f"Auth {marker}")
    assert state["status"] == "failed"
    assert state["error"] == {
        "code": "llm_auth_failed",
        "message": "the LLM endpoint rejected the API key",
        "error_class": "fatal",
        "retryable": False,
    }
    assert len(llm_admin.requests(contains=f"{marker}-auth")) == 1  # no retry
    assert "sk-leaked" not in json.dumps([e.data for e in events])


async def test_an_unknown_model_falls_back_to_the_secondary(
    gateway: GatewayClient, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    llm_admin.add_rule(
        contains=marker,
        model="gpt-4o-mini",
        has_tools=True,
        responses=[{"status": 404, "error": {"message": "model not found"}}],
    )
    _, _, state = await gateway.run(f"What is 5 * 5? {marker}")
    assert state["status"] == "completed"
    [step] = state["steps"]
    assert step["models"] == ["fallback-model"]
    assert "25" in step["result"]


def expensive_steps(admin: ScriptedLLMAdmin, marker: str) -> None:
    """Every agent call of this workflow reports 2,000 tokens of usage."""
    admin.add_rule(
        contains=marker,
        has_tools=True,
        responses=[{"usage": {"prompt_tokens": 1500, "completion_tokens": 500}}],
    )


async def test_parallel_steps_cannot_overspend_the_budget_and_the_answer_is_partial(
    gateway: GatewayClient, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    # The plan plus three 2,000-token steps need more than 6,000 tokens. Each
    # call reserves its prompt plus the 2,048-token completion cap first, so
    # however the parallel steps interleave, the first fits and one cannot.
    expensive_steps(llm_admin, marker)
    _, events, state = await gateway.run(
        f"Part one {marker}; part two; part three",
        options={"token_budget": 6000, "on_budget_exhausted": "partial"},
    )
    budget = state["budget"]
    assert budget["exhausted"] is True
    assert budget["used_tokens"] <= budget["limit_tokens"] == 6000
    assert state["usage"]["total_tokens"] == budget["used_tokens"]
    assert [e.type for e in events].count("budget.exhausted") == 1
    assert state["status"] == "completed"
    assert state["partial"] is True
    assert state["result"].startswith("Partial answer: the budget ran out")
    statuses = sorted(s["status"] for s in state["steps"])
    assert "completed" in statuses
    assert "failed" in statuses
    assert {s["error"]["code"] for s in state["steps"] if s["error"]} == {"budget_exhausted"}


async def test_a_budget_can_fail_the_workflow_instead(
    gateway: GatewayClient, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    expensive_steps(llm_admin, marker)
    _, _, state = await gateway.run(
        f"Part one {marker}; part two; part three",
        options={"token_budget": 6000, "on_budget_exhausted": "fail"},
    )
    assert state["status"] == "failed"
    assert state["error"]["code"] == "budget_exhausted"
    assert state["budget"]["used_tokens"] <= 6000


async def test_a_hung_llm_call_times_out_and_is_retried(
    gateway: GatewayClient, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    llm_admin.add_rule(
        contains=marker, has_tools=True, repeat_last=False, responses=[{"hang": True}]
    )
    _, _, state = await gateway.run(f"What is 9 * 9? {marker}")
    assert state["status"] == "completed"
    assert "81" in state["result"]
    assert len(llm_admin.requests(contains=marker)) >= 4  # plan, hung call, retry, answer


async def test_repeated_transient_failures_move_to_the_fallback_model(
    gateway: GatewayClient, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    llm_admin.add_rule(
        contains=marker, model="gpt-4o-mini", has_tools=True, responses=[{"status": 503}]
    )
    _, _, state = await gateway.run(f"What is 6 * 6? {marker}")
    assert state["status"] == "completed"
    [step] = state["steps"]
    assert step["models"] == ["fallback-model"]
    primary_attempts = [
        r for r in llm_admin.requests(contains=marker) if r.model == "gpt-4o-mini" and r.tools
    ]
    assert len(primary_attempts) >= 3  # TRIBUTARY_LLM_MAX_ATTEMPTS in the suite
