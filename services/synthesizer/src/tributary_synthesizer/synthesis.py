"""Synthesis logic, free of I/O: the prompt that joins step results into one answer."""

from __future__ import annotations

from collections.abc import Sequence

from tributary_shared.core.completions import Message
from tributary_shared.core.events import ErrorInfo
from tributary_shared.core.records import StepRecord
from tributary_shared.core.status import StepStatus

SYSTEM_PROMPT = """You write the final answer to a user's task from the results \
of the agents that worked on its parts. Combine them into one clear, complete \
answer. If some parts failed, say plainly what is missing."""


def synthesis_messages(task: str, steps: Sequence[StepRecord]) -> list[Message]:
    sections = []
    for step in sorted(steps, key=lambda s: s.index):
        if step.status is StepStatus.COMPLETED:
            body = step.result or ""
        else:
            reason = step.error.message if step.error else "unknown error"
            body = f"(this part failed: {reason})"
        sections.append(f"## {step.index + 1}. {step.title}\n{body}")
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {
            "role": "user",
            "content": f"Task: {task}\n\nResults of the parts:\n\n" + "\n\n".join(sections),
        },
    ]


def is_partial(steps: Sequence[StepRecord]) -> bool:
    return any(step.status is StepStatus.FAILED for step in steps)


def first_failure(steps: Sequence[StepRecord]) -> ErrorInfo | None:
    """The error of the first failed step, in plan order."""
    for step in sorted(steps, key=lambda s: s.index):
        if step.status is StepStatus.FAILED and step.error is not None:
            return step.error
    return None


def partial_answer(steps: Sequence[StepRecord]) -> str:
    """The finished steps' results joined without a model, when none may be called."""
    parts = [
        f"## {step.index + 1}. {step.title}\n{step.result or ''}"
        for step in sorted(steps, key=lambda s: s.index)
        if step.status is StepStatus.COMPLETED
    ]
    missing = [
        step.title
        for step in sorted(steps, key=lambda s: s.index)
        if step.status is not StepStatus.COMPLETED
    ]
    note = "Partial answer: the budget ran out before the work was finished."
    if missing:
        note += " Not covered: " + "; ".join(missing) + "."
    return note + "\n\n" + "\n\n".join(parts)
