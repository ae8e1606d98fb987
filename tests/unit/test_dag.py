from __future__ import annotations

from tributary_planner.dag import dependency_problems, doomed, find_cycle, releasable
from tributary_planner.planning import PlanDraft, plan_problems, planned_steps
from tributary_shared.core.records import StepRecord
from tributary_shared.core.status import StepStatus


def step(step_id: str, status: StepStatus, *needs: str) -> StepRecord:
    return StepRecord(
        step_id=step_id, index=0, title=step_id, instruction="", status=status, depends_on=needs
    )


def test_a_valid_graph_has_no_problems() -> None:
    assert dependency_problems({1: [], 2: [], 3: [1, 2]}, 3) == []


def test_unknown_and_self_dependencies_are_named() -> None:
    assert dependency_problems({1: [1], 2: [7]}, 2) == [
        "step 1 depends on itself",
        "step 2 depends on step 7, which does not exist",
    ]


def test_cycles_are_found_and_shown() -> None:
    assert find_cycle({1: [3], 2: [1], 3: [2]}) == [1, 3, 2, 1]
    assert dependency_problems({1: [2], 2: [1]}, 2) == [
        "the dependencies form a cycle: 1 -> 2 -> 1"
    ]
    assert find_cycle({1: [], 2: [1], 3: [1, 2]}) is None


def test_plan_steps_carry_their_dependencies_as_step_ids() -> None:
    draft = PlanDraft.model_validate(
        {
            "steps": [
                {"title": "a", "instruction": "a"},
                {"title": "b", "instruction": "b"},
                {"title": "c", "instruction": "c", "depends_on": [2, 1, 1]},
            ]
        }
    )
    assert plan_problems(draft, max_steps=5) == []
    assert planned_steps(draft)[2].depends_on == ("s1", "s2")


def test_a_step_is_released_when_all_its_inputs_completed() -> None:
    steps = [
        step("s1", StepStatus.COMPLETED),
        step("s2", StepStatus.RUNNING),
        step("s3", StepStatus.WAITING, "s1", "s2"),
        step("s4", StepStatus.WAITING, "s1"),
    ]
    assert [s.step_id for s in releasable(steps)] == ["s4"]
    assert doomed(steps) == []


def test_a_step_whose_input_failed_is_doomed() -> None:
    steps = [
        step("s1", StepStatus.FAILED),
        step("s2", StepStatus.WAITING, "s1"),
        step("s3", StepStatus.WAITING, "s2"),
    ]
    assert [s.step_id for s in doomed(steps)] == ["s2"]
    assert releasable(steps) == []
