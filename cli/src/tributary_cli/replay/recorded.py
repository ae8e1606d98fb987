"""What a rerun replays: a workflow's recorded request, plan, answer and calls. Pure.

From a workflow's events (any order, duplicates included) it picks, per scope,
the calls that made the recorded outcome:

* a step's calls are those of the attempt that recorded the step's outcome
  (else its highest attempt): earlier attempts were cut short by a crash or a
  lost lease, and a rerun runs each step once, as attempt 1;
* a scope run more than once (the planning or the synthesis taken over after a
  crash) starts its sequence again at 1; the latest run counts.

Each LLM call gets its whole message list back (``core.recording.conversations``);
tool calls that the loop answered itself (``not_run_loop``) are left out, since
a rerun's loop answers them again without a tool.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tributary_shared.core.events import (
    EventEnvelope,
    LLMCallBody,
    LLMCalled,
    PlanCreated,
    StepCompleted,
    StepFailed,
    ToolCallBody,
    ToolCalled,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowRequested,
)
from tributary_shared.core.recording import IncompleteRecord, conversations, resolve, scope_of

__all__ = [
    "CallKey",
    "RecordedLLMCall",
    "RecordedToolCall",
    "Recording",
    "RerunImpossible",
    "recording_of",
]

CallKey = tuple[str, str]
"""(role, step id or "") of a rerun's calls: attempts are not told apart."""

Final = WorkflowCompleted | WorkflowFailed | WorkflowCancelled


class RerunImpossible(Exception):
    """The events cannot be rerun (no request, no call records, an unknown step)."""


@dataclass(frozen=True)
class RecordedLLMCall:
    record: LLMCalled
    body: LLMCallBody
    messages: tuple[dict[str, Any], ...]
    """The whole conversation the call sent, kept messages included."""


@dataclass(frozen=True)
class RecordedToolCall:
    record: ToolCalled
    body: ToolCallBody


@dataclass(frozen=True)
class Recording:
    request: WorkflowRequested
    plan: PlanCreated | None
    final: Final | None
    outcomes: dict[str, StepCompleted | StepFailed]
    """Each step's recorded outcome, by step id (the last one recorded)."""
    llm_calls: dict[CallKey, tuple[RecordedLLMCall, ...]]
    """Per (role, step), the calls that count, in sequence order."""
    tool_calls: dict[str, tuple[RecordedToolCall, ...]] = field(default_factory=dict)
    """Per step, the tool calls that reached a tool, in sequence order."""

    @property
    def workflow_id(self) -> str:
        return self.request.workflow_id


def recording_of(events: Sequence[EventEnvelope]) -> Recording:
    """The recording in ``events``; raises ``RerunImpossible`` when they cannot be rerun."""
    unique = list({event.event_id: event for event in events}.values())
    requests = [e for e in unique if isinstance(e, WorkflowRequested)]
    if not requests:
        raise RerunImpossible("the events hold no workflow.requested: nothing to run again")
    request = requests[0]
    mine = [e for e in unique if e.workflow_id == request.workflow_id]
    try:
        records = resolve(mine)
    except IncompleteRecord as missing:
        raise RerunImpossible(f"a call record is incomplete: {missing}") from None
    if not any(isinstance(r, LLMCalled) for r in records):
        raise RerunImpossible(
            f"the events of workflow {request.workflow_id} hold no llm.called records "
            "(recorded before call recording existed?): there is nothing to replay"
        )
    outcomes = {
        e.step_id: e for e in mine if isinstance(e, StepCompleted | StepFailed) and e.attempt > 0
    }
    plans = [e for e in mine if isinstance(e, PlanCreated)]
    finals = [e for e in mine if isinstance(e, Final)]
    return Recording(
        request=request,
        plan=plans[-1] if plans else None,
        final=finals[-1] if finals else None,
        outcomes=outcomes,
        llm_calls=_llm_calls([r for r in records if isinstance(r, LLMCalled)], outcomes),
        tool_calls=_tool_calls([r for r in records if isinstance(r, ToolCalled)], outcomes),
    )


def _counted_attempt(
    step_id: str, attempts: Iterable[int], outcomes: dict[str, StepCompleted | StepFailed]
) -> int:
    outcome = outcomes.get(step_id)
    return outcome.attempt if outcome is not None else max(attempts)


def _latest_run(records: list[LLMCalled]) -> list[LLMCalled]:
    """The last run of one scope: a sequence that does not grow starts a new run."""
    ordered = sorted(records, key=lambda r: r.started_at)
    runs: list[list[LLMCalled]] = []
    for record in ordered:
        if not runs or record.sequence <= runs[-1][-1].sequence:
            runs.append([])
        runs[-1].append(record)
    return runs[-1] if runs else []


def _llm_calls(
    records: list[LLMCalled], outcomes: dict[str, StepCompleted | StepFailed]
) -> dict[CallKey, tuple[RecordedLLMCall, ...]]:
    by_key: dict[CallKey, dict[int, list[LLMCalled]]] = {}
    for record in records:
        key: CallKey = (record.role, record.step_id or "")
        by_key.setdefault(key, {}).setdefault(record.attempt, []).append(record)
    chosen: dict[CallKey, tuple[RecordedLLMCall, ...]] = {}
    for key, attempts in by_key.items():
        attempt = _counted_attempt(key[1], attempts, outcomes) if key[1] else max(attempts)
        run = _latest_run(attempts.get(attempt, []))
        whole = conversations(run)
        calls = []
        for record in sorted(run, key=lambda r: r.sequence):
            assert record.body is not None  # resolved, and conversations checked it
            calls.append(
                RecordedLLMCall(record, record.body, whole[(scope_of(record), record.sequence)])
            )
        chosen[key] = tuple(calls)
    return chosen


def _tool_calls(
    records: list[ToolCalled], outcomes: dict[str, StepCompleted | StepFailed]
) -> dict[str, tuple[RecordedToolCall, ...]]:
    by_step: dict[str, dict[int, list[ToolCalled]]] = {}
    for record in records:
        by_step.setdefault(record.step_id or "", {}).setdefault(record.attempt, []).append(record)
    chosen: dict[str, tuple[RecordedToolCall, ...]] = {}
    for step_id, attempts in by_step.items():
        attempt = _counted_attempt(step_id, attempts, outcomes)
        calls = []
        for record in sorted(attempts.get(attempt, []), key=lambda r: r.sequence):
            if record.outcome == "not_run_loop" or record.body is None:
                continue
            calls.append(RecordedToolCall(record, record.body))
        chosen[step_id] = tuple(calls)
    return chosen
