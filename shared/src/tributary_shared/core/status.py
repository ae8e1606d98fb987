"""Workflow and step lifecycles: which transitions exist."""

from __future__ import annotations

from enum import StrEnum


class WorkflowStatus(StrEnum):
    PENDING = "pending"
    PLANNING = "planning"
    RUNNING = "running"
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


class StepStatus(StrEnum):
    WAITING = "waiting"  # for the steps it depends on
    PENDING = "pending"  # dispatched, not started
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (StepStatus.COMPLETED, StepStatus.FAILED)
