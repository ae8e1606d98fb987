"""Workflow and step lifecycles: which transitions exist."""

from __future__ import annotations

from enum import StrEnum


class WorkflowStatus(StrEnum):
    PENDING = "pending"
    PLANNING = "planning"
    RUNNING = "running"
    AWAITING_INPUT = "awaiting_input"
    """At least one input request (a question, an approval) is open; ``running`` again
    once none is."""
    SYNTHESIZING = "synthesizing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_WORKFLOW_STATUSES


TERMINAL_WORKFLOW_STATUSES = frozenset(
    {WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED}
)
ACTIVE_WORKFLOW_STATUSES = frozenset(set(WorkflowStatus) - TERMINAL_WORKFLOW_STATUSES)
STEPS_MAY_RUN = frozenset({WorkflowStatus.RUNNING, WorkflowStatus.AWAITING_INPUT})
"""Workflow statuses in which steps are released, started and finished: a paused step
waits for its answer while the workflow's other steps go on."""


class StepStatus(StrEnum):
    WAITING = "waiting"  # for the steps it depends on
    PENDING = "pending"  # dispatched, not started
    RUNNING = "running"
    AWAITING_INPUT = "awaiting_input"  # paused on an input request; holds no runner
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (StepStatus.COMPLETED, StepStatus.FAILED)
