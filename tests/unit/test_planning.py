from __future__ import annotations

import pytest
from pydantic import ValidationError

from tributary_planner.planning import PlanDraft, plan_problems, planned_steps, planning_messages


def draft(*instructions: str) -> PlanDraft:
    return PlanDraft.model_validate(
        {"steps": [{"title": f"t{i}", "instruction": text} for i, text in enumerate(instructions)]}
    )


def test_steps_get_stable_ids_in_plan_order() -> None:
    steps = planned_steps(draft("find A", "find B", "compare"))
    assert [(s.step_id, s.index) for s in steps] == [("s1", 0), ("s2", 1), ("s3", 2)]
    assert steps[2].instruction == "compare"


def test_an_empty_plan_fails_its_schema() -> None:
    with pytest.raises(ValidationError):
        PlanDraft.model_validate({"steps": []})


def test_too_many_steps_is_a_problem() -> None:
    assert plan_problems(draft("a", "b", "c"), max_steps=2) == [
        "the plan has 3 steps; the maximum is 2"
    ]
    assert plan_problems(draft("a", "b"), max_steps=2) == []


def test_duplicate_instructions_are_a_problem() -> None:
    assert plan_problems(draft("Find A", "find a "), max_steps=5) == [
        "two steps have the same instruction"
    ]


def test_the_prompt_carries_the_task_and_the_limit() -> None:
    messages = planning_messages("compare rivers", max_steps=4)
    assert "at most 4" in messages[0]["content"]
    assert messages[-1]["content"].endswith("compare rivers")
