"""A workflow's run rebuilt from its events alone: what was asked, planned, called and answered.

Pure: it takes the decoded events (from Kafka or an export file, in any order,
duplicates included) and builds a ``Timeline``; reading the events and showing
the timeline live elsewhere (``source``, ``render``).

A pause for a person is part of the step that paused: each ``input.requested``
belongs to the attempt whose ``step.started`` caused it (the attempt that asked,
after its last iteration), with its ``input.answered``; the step goes on in a
later attempt that resumes from where it paused. The plan's approval belongs to
the plan.

Events from different topics interleave, so the timeline orders them by the time
they happened (``in_timeline_order``); the calls of one scope (the planning, one
attempt of one step, the synthesis) are ordered by their sequence numbers, which
the services assign in the order the calls were made. A call record whose payload
parts are missing is kept, marked incomplete, instead of failing the whole view.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tributary_shared.core.events import (
    AnyEvent,
    BudgetExhausted,
    CallPayload,
    InputAnswered,
    InputRequested,
    LLMCalled,
    LLMWaiting,
    PlanCreated,
    PlannedStep,
    StepCompleted,
    StepDispatched,
    StepFailed,
    StepStarted,
    SynthesisStarted,
    TokenUsage,
    ToolCalled,
    WorkflowCancelled,
    WorkflowCancelRequested,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowRequested,
)
from tributary_shared.core.recording import (
    IncompleteRecord,
    PayloadParts,
    conversations,
    scope_of,
)

__all__ = [
    "Attempt",
    "Budget",
    "CallScopeView",
    "CallView",
    "InputView",
    "Iteration",
    "StepView",
    "Timeline",
    "build_timeline",
    "in_timeline_order",
]

Outcome = WorkflowCompleted | WorkflowFailed | WorkflowCancelled
StepOutcome = StepCompleted | StepFailed


_CAUSAL_RANK = {
    kind: rank
    for rank, kinds in enumerate(
        (
            ("workflow.requested",),
            ("plan.created",),
            ("step.dispatched",),
            ("step.started",),
            ("llm.waiting",),
            ("call.payload",),
            ("llm.called", "tool.called"),
            ("input.requested",),
            ("input.answered",),
            ("step.completed", "step.failed"),
            ("synthesis.started",),
            ("budget.exhausted", "workflow.cancel_requested"),
            ("workflow.completed", "workflow.failed", "workflow.cancelled"),
        )
    )
    for kind in kinds
}


def _order_key(event: AnyEvent) -> tuple[Any, ...]:
    return (event.occurred_at, _CAUSAL_RANK.get(event.type, 0), event.event_id)


def in_timeline_order(events: Iterable[AnyEvent]) -> list[AnyEvent]:
    """The events once each (the first copy of an event id), by the time they happened.

    Events of the same instant go in the order one causes the other, then by event
    id: the order does not depend on how the events were read.
    """
    seen: set[str] = set()
    unique: list[AnyEvent] = []
    for event in events:
        if event.event_id not in seen:
            seen.add(event.event_id)
            unique.append(event)
    return sorted(unique, key=_order_key)


@dataclass(frozen=True)
class CallView:
    """One recorded LLM or tool call, with its body when every payload part was found."""

    record: LLMCalled | ToolCalled
    incomplete: str | None = None
    """Why the body is missing (payload parts not found), or None."""
    messages_total: int | None = None
    """For an LLM call: how many messages it sent in all (kept ones included), when known."""

    @property
    def kind(self) -> str:
        return "llm" if isinstance(self.record, LLMCalled) else "tool"


@dataclass(frozen=True)
class Iteration:
    """The calls of one turn of an agent's loop (``number`` None: calls that name none)."""

    number: int | None
    calls: tuple[CallView, ...]


@dataclass(frozen=True)
class InputView:
    """A request for a person's input and what became of it."""

    requested: InputRequested
    answered: InputAnswered | None
    """None: unanswered (still open, or it expired without a default)."""
    iteration: int | None = None
    """The agent loop's iteration that asked (a question); None for an approval."""


@dataclass(frozen=True)
class Attempt:
    number: int
    started: StepStarted | None
    outcome: StepOutcome | None
    iterations: tuple[Iteration, ...]
    waits: tuple[LLMWaiting, ...]
    inputs: tuple[InputView, ...] = ()
    """What the attempt asked a person, after its last iteration: an attempt that asks
    ends in a pause, and a later one resumes the step."""


@dataclass(frozen=True)
class StepView:
    step_id: str
    planned: PlannedStep | None
    """As the plan has it; None for a step only calls or results name."""
    dispatched: tuple[StepDispatched, ...]
    attempts: tuple[Attempt, ...]

    @property
    def outcome(self) -> StepOutcome | None:
        """The last attempt's outcome: what the workflow went on with."""
        ended = [attempt.outcome for attempt in self.attempts if attempt.outcome is not None]
        return ended[-1] if ended else None


@dataclass(frozen=True)
class CallScopeView:
    """The planner's or the synthesizer's calls (one scope each), and its waits for a model."""

    calls: tuple[CallView, ...] = ()
    waits: tuple[LLMWaiting, ...] = ()


@dataclass(frozen=True)
class Budget:
    token_budget: int | None
    """What the request asked for; None: the deployment's default applied."""
    cost_budget_usd: float | None
    used_tokens: int | None
    """Tokens (prompt + completion) the workflow used, by the most complete account the
    events give; None when none does."""
    used_source: str
    """Which events ``used_tokens`` comes from: "llm.called" (every recorded call's answer),
    "steps and synthesis" (no call records: the planning is not counted) or "none"."""
    recorded_calls: TokenUsage | None
    """Tokens of the recorded LLM calls' answers; None when no call was recorded."""
    exhausted: BudgetExhausted | None


@dataclass(frozen=True)
class Timeline:
    workflow_id: str
    tenant_id: str
    events: tuple[AnyEvent, ...]
    """Every event once, in timeline order (payload parts included)."""
    request: WorkflowRequested | None
    planning: CallScopeView
    plan: PlanCreated | None
    steps: tuple[StepView, ...]
    synthesis_started: SynthesisStarted | None
    synthesis: CallScopeView
    budget: Budget
    cancel_requested: WorkflowCancelRequested | None
    outcome: Outcome | None
    problems: tuple[str, ...] = field(default=())
    plan_inputs: tuple[InputView, ...] = ()
    """The plan's approval (``require_plan_approval``), asked before any step ran."""

    @property
    def inputs(self) -> tuple[InputView, ...]:
        """Every input request, the plan's first, then each step's in plan order."""
        of_steps = (
            view for step in self.steps for attempt in step.attempts for view in attempt.inputs
        )
        return (*self.plan_inputs, *of_steps)

    @property
    def status(self) -> str:
        """completed, failed, cancelled, awaiting_input (a request is unanswered and
        nothing has ended the workflow), or running (no terminal event yet)."""
        if self.outcome is None:
            if any(view.answered is None for view in self.inputs):
                return "awaiting_input"
            return "running"
        return self.outcome.type.removeprefix("workflow.")


def build_timeline(events: Iterable[AnyEvent]) -> Timeline:
    """The run of the one workflow ``events`` belong to. Raises ``ValueError`` for no events."""
    ordered = in_timeline_order(events)
    if not ordered:
        raise ValueError("no events to build a timeline from")
    problems: list[str] = []
    workflows = {event.workflow_id for event in ordered}
    if len(workflows) > 1:
        raise ValueError(f"events of {len(workflows)} workflows: {', '.join(sorted(workflows))}")
    calls = _call_views(ordered, problems)

    request = _last(ordered, WorkflowRequested)
    plan = _last(ordered, PlanCreated)
    waits = [event for event in ordered if isinstance(event, LLMWaiting)]
    inputs = _input_views(ordered)
    steps = _steps(ordered, plan, calls, waits, inputs)
    outcome: Outcome | None = _last(ordered, WorkflowCompleted | WorkflowFailed | WorkflowCancelled)
    return Timeline(
        workflow_id=ordered[0].workflow_id,
        tenant_id=ordered[0].tenant_id,
        events=tuple(ordered),
        request=request,
        planning=_scope_view(calls, waits, "planner"),
        plan=plan,
        steps=steps,
        synthesis_started=_last(ordered, SynthesisStarted),
        synthesis=_scope_view(calls, waits, "synthesizer"),
        budget=_budget(ordered, request, steps, calls),
        cancel_requested=_last(ordered, WorkflowCancelRequested),
        outcome=outcome,
        problems=tuple(problems),
        plan_inputs=tuple(view for view in inputs if view.requested.step_id is None),
    )


def _last(events: Sequence[AnyEvent], kind: Any) -> Any:
    found = [event for event in events if isinstance(event, kind)]
    return found[-1] if found else None


def _call_views(events: Sequence[AnyEvent], problems: list[str]) -> list[CallView]:
    """Every call record with its body joined back from its parts, one record at a time
    so that one whose parts are missing spoils only itself."""
    parts = PayloadParts()
    for event in events:
        if isinstance(event, CallPayload):
            parts.add(event)
    views: list[CallView] = []
    for event in events:
        if not isinstance(event, LLMCalled | ToolCalled):
            continue
        try:
            record = parts.join(event)
        except IncompleteRecord as exc:
            problems.append(f"incomplete record: {exc}")
            views.append(CallView(record=event, incomplete=str(exc)))
            continue
        views.append(CallView(record=record))
    return _with_conversation_lengths(views)


def _with_conversation_lengths(views: list[CallView]) -> list[CallView]:
    whole = conversations(
        view.record
        for view in views
        if isinstance(view.record, LLMCalled) and view.record.body is not None
    )
    counted: list[CallView] = []
    for view in views:
        messages = whole.get((scope_of(view.record), view.record.sequence))
        if isinstance(view.record, LLMCalled) and messages is not None:
            view = CallView(view.record, view.incomplete, messages_total=len(messages))
        counted.append(view)
    return counted


def _call_order(view: CallView) -> tuple[int, int, int]:
    # In a turn of the agent's loop the model is asked first, then its tools run.
    iteration = view.record.iteration if view.record.iteration is not None else 0
    return (iteration, 0 if view.kind == "llm" else 1, view.record.sequence)


def _scope_view(calls: Sequence[CallView], waits: Sequence[LLMWaiting], role: str) -> CallScopeView:
    mine = sorted((view for view in calls if view.record.role == role), key=_call_order)
    return CallScopeView(
        calls=tuple(mine), waits=tuple(wait for wait in waits if wait.role == role)
    )


def _input_views(events: Sequence[AnyEvent]) -> list[InputView]:
    answers = {event.request_id: event for event in events if isinstance(event, InputAnswered)}
    return [
        InputView(requested=event, answered=answers.get(event.request_id))
        for event in events
        if isinstance(event, InputRequested)
    ]


def _inputs_of_attempt(
    inputs: Sequence[InputView],
    starts: dict[tuple[str, int], StepStarted],
    step_id: str,
    number: int,
    iterations: tuple[Iteration, ...],
) -> tuple[InputView, ...]:
    """The step's requests its attempt ``number`` asked: those its ``step.started``
    caused, or (no such cause recorded) those of the last attempt begun before them."""
    begun = sorted(
        (started.occurred_at, attempt)
        for (sid, attempt), started in starts.items()
        if sid == step_id
    )
    caused_by = {started.event_id: attempt for (sid, attempt), started in starts.items()}

    def attempt_of(view: InputView) -> int:
        cause = caused_by.get(view.requested.causation_id or "")
        if cause is not None:
            return cause
        earlier = [a for at, a in begun if at <= view.requested.occurred_at]
        return earlier[-1] if earlier else (begun[0][1] if begun else 1)

    numbered = [number for number in (i.number for i in iterations) if number is not None]
    last = max(numbered) if numbered else None
    return tuple(
        InputView(
            view.requested,
            view.answered,
            iteration=last if view.requested.kind == "question" else None,
        )
        for view in inputs
        if view.requested.step_id == step_id and attempt_of(view) == number
    )


def _steps(
    events: Sequence[AnyEvent],
    plan: PlanCreated | None,
    calls: Sequence[CallView],
    waits: Sequence[LLMWaiting],
    inputs: Sequence[InputView] = (),
) -> tuple[StepView, ...]:
    planned = {step.step_id: step for step in plan.steps} if plan is not None else {}
    order = list(planned)
    starts: dict[tuple[str, int], StepStarted] = {}
    outcomes: dict[tuple[str, int], StepOutcome] = {}
    dispatched: dict[str, list[StepDispatched]] = {}
    for event in events:
        if isinstance(event, StepDispatched):
            dispatched.setdefault(event.step.step_id, []).append(event)
            planned.setdefault(event.step.step_id, event.step)
        elif isinstance(event, StepStarted):
            starts[(event.step_id, event.attempt)] = event
        elif isinstance(event, StepCompleted | StepFailed):
            outcomes[(event.step_id, event.attempt)] = event
    agent_calls = [view for view in calls if view.record.role == "agent"]
    step_ids = {
        *planned,
        *(step_id for step_id, _ in starts),
        *(step_id for step_id, _ in outcomes),
        *(view.record.step_id or "" for view in agent_calls),
    }
    order += sorted(step_ids - set(order))
    views: list[StepView] = []
    for step_id in order:
        numbers = sorted(
            {attempt for sid, attempt in (*starts, *outcomes) if sid == step_id}
            | {view.record.attempt for view in agent_calls if view.record.step_id == step_id}
        )
        step_waits = [wait for wait in waits if wait.role == "agent" and wait.step_id == step_id]
        attempts: list[Attempt] = []
        for number in numbers:
            iterations = _iterations(
                view
                for view in agent_calls
                if view.record.step_id == step_id and view.record.attempt == number
            )
            attempts.append(
                Attempt(
                    number=number,
                    started=starts.get((step_id, number)),
                    outcome=outcomes.get((step_id, number)),
                    iterations=iterations,
                    waits=tuple(_waits_of_attempt(step_waits, starts, step_id, number)),
                    inputs=_inputs_of_attempt(inputs, starts, step_id, number, iterations),
                )
            )
        views.append(
            StepView(
                step_id=step_id,
                planned=planned.get(step_id),
                dispatched=tuple(dispatched.get(step_id, ())),
                attempts=tuple(attempts),
            )
        )
    return tuple(views)


def _iterations(views: Iterable[CallView]) -> tuple[Iteration, ...]:
    by_number: dict[int | None, list[CallView]] = {}
    for view in sorted(views, key=_call_order):
        by_number.setdefault(view.record.iteration, []).append(view)
    return tuple(Iteration(number, tuple(calls)) for number, calls in by_number.items())


def _waits_of_attempt(
    waits: Sequence[LLMWaiting],
    starts: dict[tuple[str, int], StepStarted],
    step_id: str,
    number: int,
) -> list[LLMWaiting]:
    """A wait names its step but not the attempt: it belongs to the last attempt that
    had started when it was sent (the first attempt when none had)."""
    begun = sorted(
        (started.occurred_at, attempt)
        for (sid, attempt), started in starts.items()
        if sid == step_id
    )

    def attempt_of(wait: LLMWaiting) -> int:
        earlier = [attempt for at, attempt in begun if at <= wait.occurred_at]
        return earlier[-1] if earlier else (begun[0][1] if begun else 1)

    return [wait for wait in waits if attempt_of(wait) == number]


def _budget(
    events: Sequence[AnyEvent],
    request: WorkflowRequested | None,
    steps: Sequence[StepView],
    calls: Sequence[CallView],
) -> Budget:
    llm_records = [view.record for view in calls if isinstance(view.record, LLMCalled)]
    recorded = sum(
        (
            record.body.response.usage
            for record in llm_records
            if record.body is not None and record.body.response is not None
        ),
        TokenUsage(),
    )
    # workflow.completed carries the synthesis call's usage only; each step's outcome
    # its own. Without call records the planning's tokens are not in the events.
    completed: WorkflowCompleted | None = _last(events, WorkflowCompleted)
    step_outcomes = [
        attempt.outcome for step in steps for attempt in step.attempts if attempt.outcome
    ]
    used: int | None
    if llm_records:
        used, source = recorded.total_tokens, "llm.called"
    elif step_outcomes or completed is not None:
        used = sum(outcome.usage.total_tokens for outcome in step_outcomes)
        used += completed.usage.total_tokens if completed is not None else 0
        source = "steps and synthesis"
    else:
        used, source = None, "none"
    options = request.options if request is not None else None
    return Budget(
        token_budget=options.token_budget if options else None,
        cost_budget_usd=options.cost_budget_usd if options else None,
        used_tokens=used,
        used_source=source,
        recorded_calls=recorded if llm_records else None,
        exhausted=_last(events, BudgetExhausted),
    )
