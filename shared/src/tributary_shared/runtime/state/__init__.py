"""Workflow state in Redis: keys, atomic transitions and the per-workflow event log."""

from tributary_shared.core.keys import WorkflowKeys
from tributary_shared.runtime.state.store import (
    IdempotencyKeyReused,
    StepRecord,
    TransitionConflict,
    WorkflowRecord,
    WorkflowStore,
)

__all__ = [
    "IdempotencyKeyReused",
    "StepRecord",
    "TransitionConflict",
    "WorkflowKeys",
    "WorkflowRecord",
    "WorkflowStore",
]
