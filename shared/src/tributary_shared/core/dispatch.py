"""A step's first dispatch, as every service that releases a step writes it.

The planner dispatches root steps when it records a plan and dependents when
their inputs complete; an approved plan's root steps are dispatched by whoever
settles the approval (gateway or planner). All of them must write the same
event, with the same id, so that a copy re-sent after a crash is recognised as
the dispatch it repeats.
"""

from __future__ import annotations

from tributary_shared.core.events import (
    PlannedStep,
    StepDispatched,
    StepInput,
    WorkflowRequested,
    derived_event_id,
)
from tributary_shared.core.records import WorkflowRecord

__all__ = ["step_dispatch"]


def step_dispatch(
    of: WorkflowRequested | WorkflowRecord,
    step: PlannedStep,
    *,
    causation_id: str | None,
    inputs: tuple[StepInput, ...] = (),
) -> StepDispatched:
    """A step's dispatch; its id depends on the workflow and step only, so every
    copy sent (first dispatch, re-send after a crash) is recognised as the same."""
    return StepDispatched(
        event_id=derived_event_id(of.workflow_id, "dispatch", step.step_id),
        workflow_id=of.workflow_id,
        tenant_id=of.tenant_id,
        causation_id=causation_id,
        step=step,
        task=of.task,
        inputs=inputs,
    )
