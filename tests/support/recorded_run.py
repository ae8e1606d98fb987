"""A workflow's events built in code, as the services would emit them, for replay tests.

The run: a three-step DAG plan (s3 after s1 and s2). s1 calls the model, whose
first try fails and second answers with a calculator call, runs the tool, then
answers; its long page-fetch result travels in ``call.payload`` parts. s2 fails
on attempt 1, is taken over and fails again on attempt 2. s3 fails for its failed
input without starting. The budget runs out before the synthesis; the workflow
ends with a partial answer.

``paused_run`` is another workflow, one that paused for a person: its plan
approved, a question an agent asked (and the step resumed from where it paused),
a step's approval refused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tributary_shared.core.events import (
    AnyEvent,
    BudgetExhausted,
    CallPayload,
    CallRole,
    ErrorInfo,
    InputAnswered,
    InputRequested,
    LLMCallBody,
    LLMCalled,
    LLMRequestRecord,
    LLMResponseRecord,
    LLMTry,
    LLMWaiting,
    PlanCreated,
    PlannedStep,
    RecordedToolCall,
    StepCompleted,
    StepDispatched,
    StepFailed,
    StepStarted,
    TokenUsage,
    ToolCallBody,
    ToolCalled,
    WorkflowCompleted,
    WorkflowOptions,
    WorkflowRequested,
)
from tributary_shared.core.recording import spill

WORKFLOW = "wf_replay_1"
TENANT = "acme"
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
TASK = "Find the area of a 6 by 7 rectangle and fetch the unit's definition"
LONG_PAGE = "The square metre is the SI unit of area. " * 400  # ~16 kB: spilled into parts
ANSWER = "The area is 42 square metres."

UNAVAILABLE = ErrorInfo(
    code="llm_unavailable",
    message="the model is unavailable",
    error_class="transient",
    retryable=True,
)
REFUSED = ErrorInfo(code="llm_refused", message="the model refused", error_class="model")
DEPENDENCY = ErrorInfo(code="dependency_failed", message="step s2 failed", error_class="logic")

STEPS = (
    PlannedStep(step_id="s1", index=1, title="Area", instruction="Compute 6 * 7"),
    PlannedStep(step_id="s2", index=2, title="Unit", instruction="Fetch the unit's page"),
    PlannedStep(
        step_id="s3", index=3, title="Combine", instruction="Combine", depends_on=("s1", "s2")
    ),
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _common(seconds: float) -> dict[str, Any]:
    return {"workflow_id": WORKFLOW, "tenant_id": TENANT, "occurred_at": at(seconds)}


def _usage(prompt: int, completion: int) -> TokenUsage:
    return TokenUsage(prompt_tokens=prompt, completion_tokens=completion)


def llm_call(
    seconds: float,
    *,
    role: CallRole,
    sequence: int,
    messages: list[dict[str, Any]],
    kept: int = 0,
    response: LLMResponseRecord | None,
    step_id: str | None = None,
    attempt: int = 1,
    iteration: int | None = None,
    tries: tuple[LLMTry, ...] | None = None,
    error: ErrorInfo | None = None,
) -> LLMCalled:
    return LLMCalled(
        **_common(seconds),
        role=role,
        step_id=step_id,
        attempt=attempt,
        iteration=iteration,
        sequence=sequence,
        started_at=at(seconds - 0.5),
        duration_ms=500,
        error=error,
        body=LLMCallBody(
            request=LLMRequestRecord(messages=tuple(messages), messages_kept=kept, models=("m1",)),
            response=response,
        ),
        tries=tries
        if tries is not None
        else (LLMTry(model="m1", deployment="d1", started_at=at(seconds - 0.5), duration_ms=500),),
    )


def answer(content: str | None, prompt: int, completion: int, **extra: Any) -> LLMResponseRecord:
    return LLMResponseRecord(
        content=content, model="m1", deployment="d1", usage=_usage(prompt, completion), **extra
    )


SYSTEM = {"role": "system", "content": "You are a careful agent."}
S1_USER = {"role": "user", "content": "Your step: Area\nCompute 6 * 7"}
S1_TOOL_CALL = RecordedToolCall(id="call_1", name="calculator", arguments='{"expression": "6*7"}')
S1_ASSISTANT = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "calculator", "arguments": '{"expression": "6*7"}'},
        }
    ],
}
S1_TOOL_RESULT = {"role": "tool", "tool_call_id": "call_1", "content": "42"}


def recorded_run(*, with_all_parts: bool = True) -> list[AnyEvent]:
    """The run's events in the order they happened (``with_all_parts=False``: one payload
    part of the fetched page is lost)."""
    events: list[AnyEvent] = [
        WorkflowRequested(
            **_common(0),
            task=TASK,
            options=WorkflowOptions(token_budget=300, on_budget_exhausted="partial"),
        ),
        llm_call(
            1,
            role="planner",
            sequence=1,
            messages=[SYSTEM, {"role": "user", "content": TASK}],
            response=answer('{"steps": [...]}', 100, 40),
        ),
        PlanCreated(**_common(1.1), steps=STEPS),
        StepDispatched(**_common(1.2), step=STEPS[0], task=TASK),
        StepDispatched(**_common(1.2), step=STEPS[1], task=TASK),
        StepStarted(**_common(1.3), step_id="s1", attempt=1),
        StepStarted(**_common(1.3), step_id="s2", attempt=1),
        LLMWaiting(
            **_common(1.6),
            role="agent",
            step_id="s1",
            model="m1",
            deployment="d1",
            error=UNAVAILABLE,
            attempt=1,
            waiting_since=at(1.5),
            next_try_at=at(2.0),
        ),
        llm_call(
            2.5,
            role="agent",
            step_id="s1",
            iteration=1,
            sequence=1,
            messages=[SYSTEM, S1_USER],
            response=answer(None, 50, 10, tool_calls=(S1_TOOL_CALL,), finish_reason="tool_calls"),
            tries=(
                LLMTry(
                    model="m1",
                    deployment="d1",
                    started_at=at(1.4),
                    duration_ms=100,
                    error=UNAVAILABLE,
                ),
                LLMTry(model="m1", deployment="d1", started_at=at(2.0), duration_ms=500),
            ),
        ),
        ToolCalled(
            **_common(2.6),
            role="agent",
            step_id="s1",
            iteration=1,
            sequence=1,
            started_at=at(2.55),
            duration_ms=3,
            call_id="call_1",
            name="calculator",
            body=ToolCallBody(arguments='{"expression": "6*7"}', result="42"),
        ),
        llm_call(
            3.2,
            role="agent",
            step_id="s1",
            iteration=2,
            sequence=2,
            messages=[S1_ASSISTANT, S1_TOOL_RESULT],
            kept=2,
            response=answer("42", 70, 5, finish_reason="stop"),
        ),
        StepCompleted(
            **_common(3.3), step_id="s1", result="42", iterations=2, usage=_usage(120, 15)
        ),
        *_spilled_fetch(with_all_parts),
        StepFailed(**_common(3.6), step_id="s2", error=REFUSED, iterations=1, attempt=1),
        StepStarted(**_common(4.0), step_id="s2", attempt=2),
        llm_call(
            4.5,
            role="agent",
            step_id="s2",
            attempt=2,
            iteration=1,
            sequence=1,
            messages=[SYSTEM, {"role": "user", "content": "Your step: Unit"}],
            response=None,
            error=REFUSED,
        ),
        StepFailed(**_common(4.6), step_id="s2", error=REFUSED, iterations=1, attempt=2),
        StepFailed(**_common(4.7), step_id="s3", error=DEPENDENCY),
        BudgetExhausted(**_common(4.8), limit_tokens=300, used_tokens=325, policy="partial"),
        WorkflowCompleted(**_common(5.0), result=ANSWER, partial=True),
    ]
    return events


def _spilled_fetch(with_all_parts: bool) -> list[AnyEvent]:
    """s2's attempt 1: the model asks for a page, whose long text goes in payload parts."""
    record = ToolCalled(
        **_common(3.5),
        role="agent",
        step_id="s2",
        iteration=1,
        sequence=1,
        started_at=at(3.4),
        duration_ms=80,
        call_id="call_9",
        name="fetch_url",
        body=ToolCallBody(arguments='{"url": "https://example.org/m2"}', result=LONG_PAGE),
    )
    sent, parts = spill(record, inline_max_bytes=4096, part_bytes=4096)
    assert len(parts) > 1
    kept: list[CallPayload] = parts if with_all_parts else parts[:-1]
    return [
        llm_call(
            3.35,
            role="agent",
            step_id="s2",
            iteration=1,
            sequence=1,
            messages=[SYSTEM, {"role": "user", "content": "Your step: Unit"}],
            response=answer(None, 40, 10, finish_reason="tool_calls"),
        ),
        *(part.model_copy(update={"occurred_at": at(3.45)}) for part in kept),
        sent,
    ]


# --- a run that paused for a person --------------------------------------------------------

PAUSED_WORKFLOW = "wf_replay_paused"
QUESTION = "Which colour should the report use?"
PAUSED_STEPS = (
    PlannedStep(step_id="p1", index=0, title="Colour", instruction="Ask for the colour"),
    PlannedStep(
        step_id="p2", index=1, title="Publish", instruction="Publish it", needs_approval=True
    ),
)
ASK_CALL = RecordedToolCall(
    id="call_ask",
    name="ask_human",
    arguments='{"question": "Which colour should the report use?", "choices": ["red", "blue"]}',
)
ASK_ASSISTANT = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {
            "id": "call_ask",
            "type": "function",
            "function": {"name": "ask_human", "arguments": ASK_CALL.arguments},
        }
    ],
}


def _paused(seconds: float) -> dict[str, Any]:
    return {"workflow_id": PAUSED_WORKFLOW, "tenant_id": TENANT, "occurred_at": at(seconds)}


def paused_run(*, answered: bool = True) -> list[AnyEvent]:
    """A plan approved over Kafka; step p1's agent asks a question in iteration 1 (attempt
    1 pauses), answered over HTTP, and attempt 2 resumes from the checkpoint and answers;
    step p2 needs approval and is rejected. ``answered=False``: the events end with the
    question unanswered, the workflow waiting for it."""
    p1_started = StepStarted(**_paused(3.0), step_id="p1", attempt=1)
    p1_resumed = StepStarted(**_paused(30.0), step_id="p1", attempt=2)
    p2_started = StepStarted(**_paused(3.0), step_id="p2", attempt=1)
    p1_answer = InputAnswered(
        **_paused(29.0), request_id="in_p1", step_id="p1", answer="blue", source="http"
    )
    first_call = llm_call(
        3.5,
        role="agent",
        step_id="p1",
        iteration=1,
        sequence=1,
        messages=[SYSTEM, {"role": "user", "content": "Your step: Colour"}],
        response=answer(None, 30, 12, tool_calls=(ASK_CALL,), finish_reason="tool_calls"),
    )
    events: list[AnyEvent] = [
        WorkflowRequested(
            **_paused(0),
            task="Write the report",
            options=WorkflowOptions(require_plan_approval=True),
        ),
        llm_call(
            1,
            role="planner",
            sequence=1,
            messages=[SYSTEM, {"role": "user", "content": "Write the report"}],
            response=answer('{"steps": [...]}', 60, 20),
        ),
        PlanCreated(**_paused(1.1), steps=PAUSED_STEPS),
        InputRequested(
            **_paused(1.2),
            request_id="in_plan",
            kind="plan_approval",
            question="Approve this plan? 1. Colour; 2. Publish",
            choices=("approve", "reject"),
            requested_at=at(1.2),
        ),
        InputAnswered(**_paused(2.0), request_id="in_plan", answer="approve", source="kafka"),
        StepDispatched(**_paused(2.1), step=PAUSED_STEPS[0], task="Write the report"),
        StepDispatched(**_paused(2.1), step=PAUSED_STEPS[1], task="Write the report"),
        p1_started,
        p2_started,
        InputRequested(
            **{**_paused(3.1), "causation_id": p2_started.event_id},
            request_id="in_p2",
            kind="step_approval",
            step_id="p2",
            question="Approve step 2 before it runs? Publish",
            choices=("approve", "reject"),
            requested_at=at(3.1),
        ),
        first_call,
        InputRequested(
            **{**_paused(3.6), "causation_id": p1_started.event_id},
            request_id="in_p1",
            step_id="p1",
            question=QUESTION,
            choices=("red", "blue"),
            requested_at=at(3.6),
            expires_at=at(3603.6),
        ),
    ]
    if not answered:
        return _of_paused_workflow(events)
    events += [
        InputAnswered(
            **_paused(4.0), request_id="in_p2", step_id="p2", answer="reject", source="http"
        ),
        StepFailed(
            **_paused(4.0),
            step_id="p2",
            error=ErrorInfo(
                code="step_rejected", message="the step was rejected (in_p2)", error_class="logic"
            ),
        ),
        p1_answer,
        StepDispatched(
            **{**_paused(29.1), "causation_id": p1_answer.event_id},
            step=PAUSED_STEPS[0],
            task="Write the report",
        ),
        p1_resumed,
        ToolCalled(
            **_paused(30.1),
            role="agent",
            step_id="p1",
            attempt=2,
            iteration=1,
            sequence=1,
            started_at=at(30.1),
            duration_ms=0,
            call_id="call_ask",
            name="ask_human",
            body=ToolCallBody(arguments=ASK_CALL.arguments, result="blue"),
        ),
        llm_call(
            30.6,
            role="agent",
            step_id="p1",
            attempt=2,
            iteration=2,
            sequence=1,
            messages=[
                SYSTEM,
                {"role": "user", "content": "Your step: Colour"},
                ASK_ASSISTANT,
                {"role": "tool", "tool_call_id": "call_ask", "content": "blue"},
            ],
            response=answer("Blue.", 50, 3, finish_reason="stop"),
        ),
        StepCompleted(
            **_paused(30.7),
            step_id="p1",
            result="Blue.",
            iterations=2,
            attempt=2,
            usage=_usage(80, 15),
        ),
        WorkflowCompleted(**_paused(31.0), result="The report is blue.", partial=True),
    ]
    return _of_paused_workflow(events)


def _of_paused_workflow(events: list[AnyEvent]) -> list[AnyEvent]:
    # The call records are built by the helpers of the first run.
    return [event.model_copy(update={"workflow_id": PAUSED_WORKFLOW}) for event in events]
