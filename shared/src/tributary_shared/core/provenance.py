"""Whether an event a worker consumed is its workflow's own, judged by the store. Pure.

Anyone who can produce to a topic can write any event; the workflow store is
what the services themselves recorded. So workers act on the store and check
each event they consume against it before acting:

* the event's tenant must be the workflow's (``tenant_mismatch``);
* a ``step.dispatched`` must name a step of the stored plan that was
  dispatched (not one still waiting for its inputs), exactly as planned, with
  the workflow's task and the inputs the store holds (``dispatch_unlike_plan``);
* a ``step.completed`` or ``step.failed`` must be the outcome the store
  recorded for its step (``result_unlike_record``).

Each check returns the ``EventRefused`` to raise, or None when the event
passes: the consumer runtime dead-letters a refused event with that reason and
leaves its workflow as it is (``errors.Outcome.REFUSED``). An event for a
workflow the store does not hold (never created, or expired) is not judged
here: there is nothing to act on, and each handler skips it.

What the checks compare was written by one service through one redacting
store and publisher (``core.redaction``), so an event and its stored copy hold
the same text.
"""

from __future__ import annotations

from tributary_shared.core.errors import EventRefused
from tributary_shared.core.events import (
    EventEnvelope,
    StepCompleted,
    StepDispatched,
    StepFailed,
    StepInput,
)
from tributary_shared.core.records import StepRecord, WorkflowRecord
from tributary_shared.core.status import StepStatus

__all__ = [
    "DISPATCH_UNLIKE_PLAN",
    "RESULT_UNLIKE_RECORD",
    "TENANT_MISMATCH",
    "dispatch_refusal",
    "recorded_dispatch",
    "recorded_inputs",
    "result_refusal",
    "tenant_refusal",
]

TENANT_MISMATCH = "tenant_mismatch"
DISPATCH_UNLIKE_PLAN = "dispatch_unlike_plan"
RESULT_UNLIKE_RECORD = "result_unlike_record"


def tenant_refusal(event: EventEnvelope, record: WorkflowRecord) -> EventRefused | None:
    """Refused when the event's tenant is not the workflow's.

    The message names the event's tenant only: whoever reads the dead letter
    learns nothing about the workflow's owner from it.
    """
    if event.tenant_id == record.tenant_id:
        return None
    return EventRefused(
        f"{event.type} {event.event_id} names tenant {event.tenant_id!r}, which does not "
        f"own workflow {event.workflow_id}",
        code=TENANT_MISMATCH,
    )


def recorded_inputs(record: WorkflowRecord, step: StepRecord) -> tuple[StepInput, ...]:
    """The results of the steps ``step`` depends on, as the store holds them, in
    ``depends_on`` order; steps not completed are left out."""
    completed = {s.step_id: s for s in record.steps if s.status is StepStatus.COMPLETED}
    return tuple(
        StepInput(step_id=need, title=completed[need].title, result=completed[need].result or "")
        for need in step.depends_on
        if need in completed
    )


def dispatch_refusal(dispatched: StepDispatched, record: WorkflowRecord) -> EventRefused | None:
    """Refused unless the dispatch is what the planner recorded for the step."""
    refused = tenant_refusal(dispatched, record)
    if refused is not None:
        return refused
    step_id = dispatched.step.step_id
    stored = record.step(step_id)
    if stored is None:
        return _unlike_plan(dispatched, f"step {step_id!r} is not in the stored plan")
    if stored.status is StepStatus.WAITING:
        return _unlike_plan(dispatched, f"step {step_id} still waits for its inputs")
    differing = [
        name
        for name, same in (
            ("step", dispatched.step == stored.as_planned()),
            ("task", dispatched.task == record.task),
            ("inputs", dispatched.inputs == recorded_inputs(record, stored)),
        )
        if not same
    ]
    if differing:
        return _unlike_plan(
            dispatched, f"its {' and '.join(differing)} differ from step {step_id} as stored"
        )
    return None


def recorded_dispatch(dispatched: StepDispatched, record: WorkflowRecord) -> StepDispatched:
    """``dispatched`` with its step, task and inputs taken from the store: what a
    runner runs, so that nothing a message carries is acted on unchecked."""
    stored = record.step(dispatched.step.step_id)
    if stored is None:
        raise ValueError(f"step {dispatched.step.step_id} is not in the stored plan")
    return dispatched.model_copy(
        update={
            "tenant_id": record.tenant_id,
            "step": stored.as_planned(),
            "task": record.task,
            "inputs": recorded_inputs(record, stored),
        }
    )


def result_refusal(
    result: StepCompleted | StepFailed, record: WorkflowRecord
) -> EventRefused | None:
    """Refused unless the step result is the outcome the store recorded for its step."""
    refused = tenant_refusal(result, record)
    if refused is not None:
        return refused
    stored = record.step(result.step_id)
    if stored is None:
        reason = f"step {result.step_id!r} is not in the stored plan"
    elif stored.outcome is None:
        reason = f"step {result.step_id} has no recorded outcome ({stored.status})"
    elif stored.outcome != result:
        reason = f"it differs from the outcome recorded for step {result.step_id}"
    else:
        return None
    return EventRefused(
        f"{result.type} {result.event_id} is not what the store recorded: {reason}",
        code=RESULT_UNLIKE_RECORD,
    )


def _unlike_plan(dispatched: StepDispatched, reason: str) -> EventRefused:
    return EventRefused(
        f"step.dispatched {dispatched.event_id} is not what the planner recorded: {reason}",
        code=DISPATCH_UNLIKE_PLAN,
    )
