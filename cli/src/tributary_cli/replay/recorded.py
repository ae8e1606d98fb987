"""What a rerun replays: a workflow's recorded request, plan, answer and calls. Pure.

From a workflow's events (any order, duplicates included) it picks, per scope,
the calls that made the recorded outcome:

* a step's calls are those of the attempt that recorded the step's outcome
  (else its highest attempt), after those of each earlier attempt that ended
  in a pause for a person (``input.requested``): the step resumed from that
  attempt's checkpoint, so its calls are part of the outcome, and a rerun
  pauses and resumes the same way. Other earlier attempts were cut short by a
  crash or a lost lease;
* a scope run more than once (the planning or the synthesis taken over after a
  crash) starts its sequence again at 1; the latest run counts.

Each LLM call gets its whole message list back (``core.recording.conversations``);
tool calls that the loop answered itself (``not_run_loop``) are left out, since
a rerun's loop answers them again without a tool, and so are the answered
``ask_human`` calls: no tool runs for them, a person's answer (``input.answered``)
resumes the step, and the rerun gives the recorded answer again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tributary_shared.core.events import (
    EventEnvelope,
    InputAnswered,
    InputRequested,
    LLMCallBody,
    LLMCalled,
    PlanCreated,
    StepCompleted,
    StepFailed,
    StepStarted,
    ToolCallBody,
    ToolCalled,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowRequested,
)
from tributary_shared.core.recording import IncompleteRecord, conversations, resolve, scope_of

__all__ = [
    "ASK_HUMAN",
    "CallKey",
    "RecordedLLMCall",
    "RecordedToolCall",
    "Recording",
    "RerunImpossible",
    "recording_of",
]

ASK_HUMAN = "ask_human"
"""The agents' tool that pauses a step for a person (``tributary_agent_runner.tools``)."""

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
    input_requests: tuple[InputRequested, ...] = ()
    """Every input request (questions and approvals), in the order they were made."""
    input_answers: dict[str, InputAnswered] = field(default_factory=dict)
    """The answer to each answered request, by request id."""

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
    asked = sorted((e for e in mine if isinstance(e, InputRequested)), key=lambda e: e.requested_at)
    paused = _paused_attempts(mine, asked)
    plans = [e for e in mine if isinstance(e, PlanCreated)]
    finals = [e for e in mine if isinstance(e, Final)]
    return Recording(
        request=request,
        plan=plans[-1] if plans else None,
        final=finals[-1] if finals else None,
        outcomes=outcomes,
        llm_calls=_llm_calls([r for r in records if isinstance(r, LLMCalled)], outcomes, paused),
        tool_calls=_tool_calls([r for r in records if isinstance(r, ToolCalled)], outcomes, paused),
        input_requests=tuple(asked),
        input_answers={e.request_id: e for e in mine if isinstance(e, InputAnswered)},
    )


def _paused_attempts(
    events: Sequence[EventEnvelope], requests: Sequence[InputRequested]
) -> dict[str, set[int]]:
    """Per step, the attempts that ended in a pause: a request is caused by the
    ``step.started`` of the attempt that asked it."""
    started = {e.event_id: e for e in events if isinstance(e, StepStarted)}
    paused: dict[str, set[int]] = {}
    for request in requests:
        begun = started.get(request.causation_id or "")
        if begun is not None and request.step_id == begun.step_id:
            paused.setdefault(begun.step_id, set()).add(begun.attempt)
    return paused


def _counted_attempts(
    step_id: str,
    attempts: Iterable[int],
    outcomes: dict[str, StepCompleted | StepFailed],
    paused: dict[str, set[int]],
) -> list[int]:
    """The attempts whose calls made the step's outcome, in order (see the module)."""
    outcome = outcomes.get(step_id)
    last = outcome.attempt if outcome is not None else max(attempts)
    return sorted({a for a in paused.get(step_id, ()) if a < last} | {last})


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
    records: list[LLMCalled],
    outcomes: dict[str, StepCompleted | StepFailed],
    paused: dict[str, set[int]],
) -> dict[CallKey, tuple[RecordedLLMCall, ...]]:
    by_key: dict[CallKey, dict[int, list[LLMCalled]]] = {}
    for record in records:
        key: CallKey = (record.role, record.step_id or "")
        by_key.setdefault(key, {}).setdefault(record.attempt, []).append(record)
    chosen: dict[CallKey, tuple[RecordedLLMCall, ...]] = {}
    for key, attempts in by_key.items():
        counted = (
            _counted_attempts(key[1], attempts, outcomes, paused) if key[1] else [max(attempts)]
        )
        calls = []
        for attempt in counted:
            run = _latest_run(attempts.get(attempt, []))
            whole = conversations(run)
            for record in sorted(run, key=lambda r: r.sequence):
                assert record.body is not None  # resolved, and conversations checked it
                calls.append(
                    RecordedLLMCall(record, record.body, whole[(scope_of(record), record.sequence)])
                )
        chosen[key] = tuple(calls)
    return chosen


def _tool_calls(
    records: list[ToolCalled],
    outcomes: dict[str, StepCompleted | StepFailed],
    paused: dict[str, set[int]],
) -> dict[str, tuple[RecordedToolCall, ...]]:
    by_step: dict[str, dict[int, list[ToolCalled]]] = {}
    for record in records:
        by_step.setdefault(record.step_id or "", {}).setdefault(record.attempt, []).append(record)
    chosen: dict[str, tuple[RecordedToolCall, ...]] = {}
    for step_id, attempts in by_step.items():
        calls = []
        for attempt in _counted_attempts(step_id, attempts, outcomes, paused):
            for record in sorted(attempts.get(attempt, []), key=lambda r: r.sequence):
                if record.outcome == "not_run_loop" or record.body is None:
                    continue
                if record.name == ASK_HUMAN and not record.failed:
                    continue  # answered by a person, not run: the rerun answers it again
                calls.append(RecordedToolCall(record, record.body))
        chosen[step_id] = tuple(calls)
    return chosen
