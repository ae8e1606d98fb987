"""Plans as DAGs across the real services: parallel roots, joins, failures that propagate."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.client import GatewayClient
from tributary_scripted_llm import ScriptedLLMAdmin

pytestmark = pytest.mark.integration


def plan_rule(admin: ScriptedLLMAdmin, marker: str, *plans: list[dict[str, Any]]) -> None:
    admin.add_rule(
        contains=marker,
        schema_name="tributary_plan",
        responses=[{"json": {"steps": steps}} for steps in plans],
    )


DIAMOND: list[dict[str, Any]] = [
    {"title": "Width", "instruction": "What is 6 * 7?"},
    {"title": "Height", "instruction": "What is 3 + 4?"},
    {"title": "Area", "instruction": "Combine the two results", "depends_on": [1, 2]},
]


async def test_a_dependent_step_starts_after_its_inputs_and_receives_their_results(
    gateway: GatewayClient, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    plan_rule(llm_admin, marker, DIAMOND)
    _, events, state = await gateway.run(f"Diamond {marker}")
    assert state["status"] == "completed"
    assert [s["depends_on"] for s in state["steps"]] == [[], [], ["s1", "s2"]]

    order = [
        (e.type, e.data.get("step_id") or e.data.get("step", {}).get("step_id")) for e in events
    ]
    s3_dispatched = order.index(("step.dispatched", "s3"))
    assert order.index(("step.completed", "s1")) < s3_dispatched
    assert order.index(("step.completed", "s2")) < s3_dispatched
    dispatched = next(
        e for e in events if e.type == "step.dispatched" and e.data["step"]["step_id"] == "s3"
    )
    assert [i["step_id"] for i in dispatched.data["inputs"]] == ["s1", "s2"]
    assert "42" in dispatched.data["inputs"][0]["result"]

    [join_call] = [r for r in llm_admin.requests(contains="Combine the two results") if r.tools][:1]
    prompt = " ".join(str(m.get("content")) for m in join_call.messages)
    assert "Results of the steps yours builds on" in prompt
    assert "42" in prompt
    assert "7" in prompt


async def test_a_failed_input_skips_its_dependents_and_the_rest_still_finishes(
    gateway: GatewayClient, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    plan_rule(
        llm_admin,
        marker,
        [
            {"title": "Doomed", "instruction": f"Refuse {marker}-refuse"},
            {"title": "Fine", "instruction": "Say hello"},
            {"title": "Needs doomed", "instruction": "Use it", "depends_on": [1]},
            {"title": "Needs that", "instruction": "Use that too", "depends_on": [3]},
        ],
    )
    llm_admin.add_rule(contains=f"{marker}-refuse", responses=[{"refusal": "no"}])
    _, _, state = await gateway.run(f"Propagate {marker}")
    statuses = {s["step_id"]: (s["status"], (s["error"] or {}).get("code")) for s in state["steps"]}
    assert statuses == {
        "s1": ("failed", "llm_refused"),
        "s2": ("completed", None),
        "s3": ("failed", "dependency_failed"),
        "s4": ("failed", "dependency_failed"),
    }
    assert state["status"] == "completed"
    assert state["partial"] is True


async def test_a_cyclic_plan_gets_one_corrective_replan(
    gateway: GatewayClient, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    cyclic = [
        {"title": "A", "instruction": "a", "depends_on": [2]},
        {"title": "B", "instruction": "b", "depends_on": [1]},
    ]
    plan_rule(llm_admin, marker, cyclic, DIAMOND)
    _, _, state = await gateway.run(f"Replan {marker}")
    assert state["status"] == "completed"
    assert len(state["steps"]) == 3
    replan = llm_admin.requests(contains=marker)[1]
    assert "the dependencies form a cycle: 1 -> 2 -> 1" in str(replan.messages[-1])


@pytest.mark.parametrize(
    ("bad_plan", "problem"),
    [
        ([{"title": "A", "instruction": "a", "depends_on": [1]}], "depends on itself"),
        ([{"title": "A", "instruction": "a", "depends_on": [9]}], "does not exist"),
        ([], "steps"),
    ],
    ids=["self-dependency", "unknown-dependency", "empty"],
)
async def test_a_plan_that_stays_invalid_fails_the_workflow_clearly(
    gateway: GatewayClient,
    llm_admin: ScriptedLLMAdmin,
    marker: str,
    bad_plan: list[dict[str, Any]],
    problem: str,
) -> None:
    plan_rule(llm_admin, marker, bad_plan)
    _, _, state = await gateway.run(f"Invalid {marker}")
    assert state["status"] == "failed"
    assert state["error"]["code"] in {"plan_invalid", "llm_schema_mismatch"}
    assert state["error"]["error_class"] == "model"


async def test_too_many_steps_is_refused(
    gateway: GatewayClient, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    many = [{"title": f"T{i}", "instruction": f"i{i}"} for i in range(4)]
    plan_rule(llm_admin, marker, many)
    _, _, state = await gateway.run(f"Many {marker}", options={"max_steps": 2})
    assert state["status"] == "failed"
    assert state["error"]["code"] == "plan_invalid"
    assert "the maximum is 2" in state["error"]["message"]
