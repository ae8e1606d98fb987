"""What a rerun reports: no divergence, or the first one, with a readable diff. Pure."""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "Divergence",
    "RerunReport",
    "render_json",
    "render_messages",
    "unified_diff",
]


@dataclass(frozen=True)
class Divergence:
    """The first point where the rerun did something other than the recording."""

    role: str
    """planner, agent or synthesizer; "workflow" for the final answer."""
    step_id: str | None
    iteration: int | None
    """The agent loop's iteration of the call (None outside the loop)."""
    kind: str
    """'prompt', 'tools offered', 'response format', 'tool call', 'plan', 'step outcome',
    'extra call', 'missing call', 'answer' (the final answer, or the answer a paused step
    resumed with or an input request got), 'input request' (the rerun asked another
    question, or with other choices, than recorded), 'extra input request' or
    'missing input request'."""
    expected: str
    """What the recording holds, rendered as text."""
    actual: str
    """What the rerun did, rendered as text."""
    diff: str
    """A unified diff from ``expected`` to ``actual``."""
    sequence: int | None = None
    """Which call of its scope (1-based, per kind of call), when it is a call."""

    def where(self) -> str:
        parts = [self.role]
        if self.step_id:
            parts.append(f"step {self.step_id}")
        if self.iteration is not None:
            parts.append(f"iteration {self.iteration}")
        if self.sequence is not None:
            parts.append(f"call {self.sequence}")
        return ", ".join(parts)


@dataclass(frozen=True)
class RerunReport:
    workflow_id: str
    divergence: Divergence | None
    llm_calls_replayed: int
    llm_calls_live: int
    tool_calls_replayed: int
    tool_calls_live: int
    final_answer: str | None
    """The rerun's answer (None when it failed or stopped at a divergence)."""
    status: str | None = None
    """How the rerun's workflow ended: completed, failed, or None when it stopped."""
    live_from: str | None = None
    """The step (id) from which the model and the tools were called for real."""
    input_answers_given: int = 0
    """Input requests the rerun answered (or expired) as recorded."""
    awaiting_input: str | None = None
    """The recorded input request nobody had answered, where the rerun stopped (as the
    recording does); None when it did not stop at one."""

    def render(self) -> str:
        lines: list[str] = []
        if self.divergence is None:
            lines.append("0 divergences")
        else:
            d = self.divergence
            lines.append(f"1 divergence: {d.kind} at {d.where()}")
            lines.append(d.diff.rstrip("\n") or f"recorded: {d.expected}\nrerun:    {d.actual}")
        lines.append(
            f"replayed {_count(self.llm_calls_replayed, 'LLM call')} and "
            f"{_count(self.tool_calls_replayed, 'tool call')}"
            + (
                f"; live from step {self.live_from}: "
                f"{_count(self.llm_calls_live, 'LLM call')} and "
                f"{_count(self.tool_calls_live, 'tool call')}"
                if self.live_from is not None
                else ""
            )
        )
        if self.input_answers_given:
            lines.append(f"gave {_count(self.input_answers_given, 'recorded input answer')}")
        if self.awaiting_input is not None:
            lines.append(
                f"stopped at an input request the recording leaves unanswered: "
                f"{self.awaiting_input}"
            )
        if self.status is not None:
            lines.append(f"workflow {self.status}")
        if self.final_answer is not None:
            lines.append("answer:")
            lines.append(self.final_answer)
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {
            "workflow_id": self.workflow_id,
            "divergences": 0 if self.divergence is None else 1,
            "divergence": asdict(self.divergence) if self.divergence is not None else None,
            "llm_calls_replayed": self.llm_calls_replayed,
            "llm_calls_live": self.llm_calls_live,
            "tool_calls_replayed": self.tool_calls_replayed,
            "tool_calls_live": self.tool_calls_live,
            "live_from": self.live_from,
            "input_answers_given": self.input_answers_given,
            "awaiting_input": self.awaiting_input,
            "status": self.status,
            "final_answer": self.final_answer,
        }


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def render_messages(messages: Sequence[dict[str, Any]]) -> str:
    """A conversation as lines a person reads: each message's role, then its text."""
    blocks: list[str] = []
    for index, message in enumerate(messages, start=1):
        head = f"[{index}] {message.get('role', '?')}"
        if message.get("tool_call_id"):
            head += f" (answer to {message['tool_call_id']})"
        lines = [head]
        content = message.get("content")
        if isinstance(content, str):
            lines.extend(f"    {line}" for line in content.splitlines() or [""])
        elif content is not None:
            lines.append(f"    {json.dumps(content, sort_keys=True)}")
        for call in message.get("tool_calls") or ():
            function = call.get("function", {})
            lines.append(
                f"    -> {function.get('name')}({function.get('arguments')}) [{call.get('id')}]"
            )
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def render_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def unified_diff(expected: str, actual: str) -> str:
    return "\n".join(
        difflib.unified_diff(
            expected.splitlines(),
            actual.splitlines(),
            fromfile="recorded",
            tofile="rerun",
            lineterm="",
        )
    )
