"""What the workflow store holds, as typed, immutable records.

A ``WorkflowRecord`` is the whole state of one workflow as the rest of the
system reads it: its status, request, plan, the state of every step, usage and
outcome. Transitions (``core.machine``) produce new records; the stores only
persist them. Nothing here knows how a record is laid out in Redis.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from tributary_shared.core.events import (
    Complexity,
    ErrorInfo,
    InputKind,
    InputRequested,
    Model,
    PlannedStep,
    StepCompleted,
    StepFailed,
    TokenUsage,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowOptions,
)
from tributary_shared.core.status import StepStatus, WorkflowStatus

StepOutcome = Annotated[StepCompleted | StepFailed, Field(discriminator="type")]
FinalEvent = Annotated[
    WorkflowCompleted | WorkflowFailed | WorkflowCancelled, Field(discriminator="type")
]


InputState = Literal["open", "answered", "expired"]


class InputRequest(Model):
    """One question put to a human, and what became of it."""

    request_id: str
    kind: InputKind = "question"
    step_id: str | None = None
    question: str
    choices: tuple[str, ...] | None = None
    requested_at: datetime
    expires_at: datetime | None = None
    timeout_answer: str | None = Field(
        default=None,
        description="Given in place of an answer when it expires; None fails its step.",
    )
    state: InputState = "open"
    answer: str | None = None
    answered_at: datetime | None = None

    @classmethod
    def of(cls, requested: InputRequested, *, timeout_answer: str | None) -> InputRequest:
        return cls(
            request_id=requested.request_id,
            kind=requested.kind,
            step_id=requested.step_id,
            question=requested.question,
            choices=requested.choices,
            requested_at=requested.requested_at,
            expires_at=requested.expires_at,
            timeout_answer=timeout_answer,
        )

    def expired_at(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at.timestamp() <= now


class StepCheckpoint(Model):
    """Where a paused step's agent stopped: what its loop needs to go on, so that no LLM
    call made before the pause is made again."""

    request_id: str = Field(description="The input request the step waits for.")
    tool_call_id: str = Field(description="The ask_human call the answer goes back to.")
    messages: tuple[dict[str, Any], ...] = Field(description="The conversation so far.")
    iterations: int = 0
    usage: TokenUsage = Field(default_factory=TokenUsage)
    models: tuple[str, ...] = ()
    deployments: tuple[str, ...] = ()
    tool_failures: int = 0


class StepRecord(Model):
    """One planned step and how far it got."""

    step_id: str
    index: int
    title: str
    instruction: str
    complexity: Complexity = "medium"
    depends_on: tuple[str, ...] = ()
    needs_approval: bool = False
    status: StepStatus
    attempt: int = Field(default=0, description="Runs started so far (1 for the first run).")
    iterations: int = 0
    usage: TokenUsage = Field(default_factory=TokenUsage)
    models: tuple[str, ...] = ()
    result: str | None = None
    error: ErrorInfo | None = None
    outcome: StepOutcome | None = Field(
        default=None,
        description="The step's terminal event, kept so a redelivery can publish it again.",
    )
    owner: str | None = Field(
        default=None, description="Token of the runner that holds the step's lease."
    )
    lease_until: float = Field(
        default=0.0, description="Epoch seconds until which the lease holds; 0 when none."
    )
    checkpoint: StepCheckpoint | None = Field(
        default=None, description="Where the agent paused for input, kept to resume from."
    )

    def leased_at(self, now: float) -> bool:
        """Whether a runner holds the step at ``now`` (its lease has not expired)."""
        return bool(self.owner) and self.lease_until > now

    @classmethod
    def planned(cls, step: PlannedStep) -> StepRecord:
        """A newly planned step: pending, or waiting for the steps it depends on."""
        return cls(
            step_id=step.step_id,
            index=step.index,
            title=step.title,
            instruction=step.instruction,
            complexity=step.complexity,
            depends_on=step.depends_on,
            needs_approval=step.needs_approval,
            status=StepStatus.WAITING if step.depends_on else StepStatus.PENDING,
        )

    def as_planned(self) -> PlannedStep:
        return PlannedStep(
            step_id=self.step_id,
            index=self.index,
            title=self.title,
            instruction=self.instruction,
            complexity=self.complexity,
            depends_on=self.depends_on,
            needs_approval=self.needs_approval,
        )


class WorkflowRecord(Model):
    """Everything known about one workflow."""

    workflow_id: str
    tenant_id: str = "default"
    status: WorkflowStatus
    task: str
    options: WorkflowOptions = Field(default_factory=WorkflowOptions)
    created_at: datetime
    updated_at: datetime
    deadline_at: float | None = Field(
        default=None, description="Epoch seconds by which the workflow must end."
    )
    steps: tuple[StepRecord, ...] = ()
    steps_total: int = 0
    steps_finished: int = 0
    result: str | None = None
    partial: bool = False
    error: ErrorInfo | None = None
    usage: TokenUsage = Field(default_factory=TokenUsage)
    final_event: FinalEvent | None = None
    planning_owner: str | None = Field(
        default=None, description="Token of the planner that holds the planning lease."
    )
    planning_lease_until: float = Field(
        default=0.0,
        description="Epoch seconds until which the planning lease holds; 0 when none.",
    )
    input_requests: tuple[InputRequest, ...] = Field(
        default=(), description="Every input request, open or settled, oldest first."
    )

    @property
    def open_inputs(self) -> tuple[InputRequest, ...]:
        return tuple(r for r in self.input_requests if r.state == "open")

    def input_request(self, request_id: str) -> InputRequest | None:
        return next((r for r in self.input_requests if r.request_id == request_id), None)

    def planning_leased_at(self, now: float) -> bool:
        """Whether a planner holds the workflow's planning at ``now`` (its lease has not
        expired)."""
        return bool(self.planning_owner) and self.planning_lease_until > now

    @property
    def all_steps_finished(self) -> bool:
        return self.steps_total > 0 and self.steps_finished >= self.steps_total

    def step(self, step_id: str) -> StepRecord | None:
        return next((s for s in self.steps if s.step_id == step_id), None)


class WorkflowPage(Model):
    """One page of a listing of workflows, newest first."""

    records: tuple[WorkflowRecord, ...]
    next_cursor: str | None = Field(
        default=None, description="Where the next page starts; None after the last page."
    )


class LogEntry(Model):
    """One event of a workflow's log, as stored: its position and its JSON."""

    stream_id: str = Field(description="Position in the log; serves as SSE Last-Event-ID.")
    type: str
    event_json: str


def stream_position(stream_id: str) -> tuple[int, int]:
    """A log position ("<ms>-<seq>", or "0") as a pair that sorts as the log does."""
    first, _, second = stream_id.partition("-")
    return int(first), int(second or 0)


class Applied(Model):
    """What a written transition left behind, read in the same atomic step."""

    steps_finished: int
    steps_total: int
