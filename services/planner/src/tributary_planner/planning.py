"""Planning logic, free of I/O: the prompt, the plan schema and its validation."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tributary_planner.dag import dependency_problems
from tributary_shared.core.completions import Message
from tributary_shared.core.events import Complexity, PlannedStep

PLAN_SCHEMA_NAME = "tributary_plan"

SYSTEM_PROMPT = """You are the planner of a team of research agents.
Split the user's task into independent subtasks that agents can carry out \
separately; each agent has tools (such as a calculator) and answers one subtask.
Use as few subtasks as the task needs, at most {max_steps}. Give each a short \
title, a self-contained instruction and its complexity (low, medium or high). \
Independent steps run in parallel; when a step needs the results of others, \
list their numbers (1-based) in depends_on. Set needs_approval on a step only when \
it must not run before a person approves it (it acts on the outside world, spends \
money, or the task says so); such a step waits for that approval. Reply with JSON only."""


class DraftStep(BaseModel):
    model_config = ConfigDict(extra="ignore")

    title: str = Field(min_length=1, max_length=200)
    instruction: str = Field(min_length=1, max_length=4000)
    complexity: Complexity = Field(
        default="medium",
        description="low: lookup or arithmetic; medium: ordinary research; high: hard reasoning.",
    )
    depends_on: list[int] = Field(
        default_factory=list,
        description="Numbers (1-based) of the steps whose results this step needs.",
    )
    needs_approval: bool = Field(
        default=False,
        description="True when a person must approve the step before it runs.",
    )


class PlanDraft(BaseModel):
    """What the model must return (its JSON schema is sent as ``response_format``)."""

    model_config = ConfigDict(extra="ignore")

    steps: list[DraftStep] = Field(min_length=1)


def planning_messages(task: str, *, max_steps: int) -> list[Message]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT.format(max_steps=max_steps)},
        {"role": "user", "content": f"Task: {task}"},
    ]


def plan_problems(draft: PlanDraft, *, max_steps: int) -> list[str]:
    """Why a schema-valid plan is still unusable (empty list when it is fine)."""
    problems = []
    if len(draft.steps) > max_steps:
        problems.append(f"the plan has {len(draft.steps)} steps; the maximum is {max_steps}")
    instructions = [s.instruction.strip().lower() for s in draft.steps]
    if len(set(instructions)) != len(instructions):
        problems.append("two steps have the same instruction")
    dependencies = {i + 1: step.depends_on for i, step in enumerate(draft.steps)}
    problems += dependency_problems(dependencies, len(draft.steps))
    return problems


def correction_messages(problems: list[str]) -> list[Message]:
    return [
        {
            "role": "user",
            "content": "That plan cannot be used: "
            + "; ".join(problems)
            + ". Reply again with a corrected plan.",
        }
    ]


def planned_steps(draft: PlanDraft) -> tuple[PlannedStep, ...]:
    """Steps with ids that are stable across re-deliveries (s1, s2, ...)."""
    return tuple(
        PlannedStep(
            step_id=f"s{index + 1}",
            index=index,
            title=step.title.strip(),
            instruction=step.instruction.strip(),
            complexity=step.complexity,
            depends_on=tuple(f"s{need}" for need in sorted(set(step.depends_on))),
            needs_approval=step.needs_approval,
        )
        for index, step in enumerate(draft.steps)
    )
