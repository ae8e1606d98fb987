"""Answering and expiring input requests: one transition each, then the events on Kafka.

The gateway (``POST /v1/workflows/{id}/input``), the planner (``input.submitted`` on
the ingress topic) and the planner's expiry sweep all settle a request here, so
an answer means the same whichever way it came. Settling writes
``input.answered`` and the ``step.dispatched`` that resumes the step in one
atomic transition; the dispatch is published after, and a crash in between
leaves it to the outbox sweep.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import StrEnum

from tributary_shared.core import machine
from tributary_shared.core.dispatch import step_dispatch
from tributary_shared.core.errors import InputTimedOut
from tributary_shared.core.events import (
    APPROVAL_CHOICES,
    AnyEvent,
    ErrorInfo,
    InputAnswered,
    InputSource,
    StepDispatched,
    StepFailed,
    WorkflowFailed,
    derived_event_id,
)
from tributary_shared.core.machine import TransitionConflict
from tributary_shared.core.ports import EventPublisher, WorkflowStore
from tributary_shared.core.provenance import recorded_inputs
from tributary_shared.core.records import InputRequest, WorkflowRecord

__all__ = ["InputRefused", "Refusal", "WorkflowInputs"]

log = logging.getLogger(__name__)

_SETTLE_ATTEMPTS = 3
"""Reads and settles of one answer while other moves of the workflow keep coming between."""


class Refusal(StrEnum):
    """Why an answer was not taken; the value is the API's error code."""

    WORKFLOW_NOT_FOUND = "workflow_not_found"
    REQUEST_NOT_FOUND = "input_request_not_found"
    ALREADY_ANSWERED = "input_already_answered"
    EXPIRED = "input_request_expired"
    WORKFLOW_ENDED = "workflow_ended"
    NOT_A_CHOICE = "input_answer_not_a_choice"


class InputRefused(Exception):
    """The answer changes nothing: ``refusal`` says why."""

    def __init__(self, refusal: Refusal, message: str) -> None:
        super().__init__(message)
        self.refusal = refusal
        self.message = message


class WorkflowInputs:
    def __init__(
        self,
        *,
        store: WorkflowStore,
        publisher: EventPublisher,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._clock = clock

    async def answer(
        self,
        workflow_id: str,
        *,
        request_id: str,
        answer: str,
        source: InputSource,
        causation_id: str | None = None,
    ) -> InputRequest:
        """Settle an open request with ``answer``; the request as answered. Raises
        ``InputRefused`` (nothing written) when the answer cannot be taken."""
        for attempt in range(1, _SETTLE_ATTEMPTS + 1):
            record = await self._store.get_workflow(workflow_id)
            request = _open_request(record, workflow_id, request_id, now=self._clock())
            assert record is not None
            if request.choices is not None and answer not in request.choices:
                raise InputRefused(
                    Refusal.NOT_A_CHOICE, f"the answer must be one of {list(request.choices)}"
                )
            answered = _answered(record, request, answer, source=source, causation_id=causation_id)
            transition = _settling(record, request, answered)
            try:
                await self._store.apply(transition)
            except TransitionConflict:
                # Settled, or the workflow ended, since it was read: the next read says
                # which. Still open: another move of the workflow came between, so the
                # answer is settled again against what it is now.
                if attempt == _SETTLE_ATTEMPTS:
                    raise
                continue
            await self._publish(list(transition.events))
            assert transition.input_request is not None
            return transition.input_request
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def expire(self, workflow_id: str, request_id: str, *, now: float) -> bool:
        """Settle a request past its expiry: its default answer, or its step fails. False
        when there was nothing to do (settled already, the workflow ended or is gone)."""
        record = await self._store.get_workflow(workflow_id)
        request = record.input_request(request_id) if record is not None else None
        if record is None or request is None or request.state != "open":
            await self._store.forget_input_expiry(workflow_id, request_id)
            return False
        if not request.expired_at(now):
            return False
        default = request.timeout_answer
        if (
            request.choices is not None
            and request.kind != "question"
            and default not in request.choices
        ):
            default = None  # an approval is given or refused, never anything else
        if default is None:
            transition = _timed_out(record, request)
        else:
            answered = _answered(record, request, default, source="timeout", causation_id=None)
            transition = _settling(record, request, answered, expired=True)
        try:
            await self._store.apply(transition)
        except TransitionConflict:
            await self._store.forget_input_expiry(workflow_id, request_id)
            return False
        log.info("input request %s expired", request_id, extra={"workflow_id": workflow_id})
        await self._publish(list(transition.events))
        return True

    async def _publish(self, events: list[AnyEvent]) -> None:
        try:
            await self._publisher.publish(events)
        except Exception:  # written: the outbox sweep sends them
            log.warning("input events not published now; the unsent sweep sends them")


def _open_request(
    record: WorkflowRecord | None, workflow_id: str, request_id: str, *, now: float
) -> InputRequest:
    """The request, if an answer may settle it now; else ``InputRefused`` saying why."""
    if record is None:
        raise InputRefused(Refusal.WORKFLOW_NOT_FOUND, f"workflow {workflow_id!r} not found")
    request = record.input_request(request_id)
    if request is None:
        raise InputRefused(
            Refusal.REQUEST_NOT_FOUND,
            f"workflow {workflow_id!r} has no input request {request_id!r}",
        )
    if record.status.terminal:
        raise InputRefused(Refusal.WORKFLOW_ENDED, f"workflow has already ended: {record.status}")
    if request.state == "answered":
        raise InputRefused(Refusal.ALREADY_ANSWERED, f"input request {request_id!r} was answered")
    if request.state == "expired" or request.expired_at(now):
        raise InputRefused(Refusal.EXPIRED, f"input request {request_id!r} has expired")
    return request


def _answered(
    record: WorkflowRecord,
    request: InputRequest,
    answer: str,
    *,
    source: InputSource,
    causation_id: str | None,
) -> InputAnswered:
    return InputAnswered(
        event_id=derived_event_id(record.workflow_id, "answer", request.request_id),
        workflow_id=record.workflow_id,
        tenant_id=record.tenant_id,
        causation_id=causation_id,
        request_id=request.request_id,
        step_id=request.step_id,
        answer=answer,
        source=source,
    )


def _settling(
    record: WorkflowRecord, request: InputRequest, answered: InputAnswered, *, expired: bool = False
) -> machine.Transition:
    """The transition an answer makes, by the kind of request and the answer."""
    rejected = request.kind != "question" and answered.answer == REJECT
    if request.kind == "plan_approval":
        if rejected:
            return machine.reject_plan(request, answered, _workflow_failed(record, PLAN_REJECTED))
        roots = [
            step_dispatch(record, step.as_planned(), causation_id=answered.event_id)
            for step in record.steps
            if not step.depends_on
        ]
        return machine.approve_plan(request, answered, roots, expired=expired)
    if rejected:
        failed = _step_failed(record, request, STEP_REJECTED)
        return machine.reject_step(request, answered, failed)
    redispatch = _resume(record, request, answered)
    if expired:
        return machine.expire_input(request, (answered, redispatch))
    return machine.answer_input(request, answered, redispatch)


def _timed_out(record: WorkflowRecord, request: InputRequest) -> machine.Transition:
    """An expired request without a default: its step fails, or (the plan's) the workflow."""
    code = InputTimedOut.default_code
    if request.kind == "plan_approval":
        return machine.reject_plan(request, None, _workflow_failed(record, code))
    return machine.expire_input(request, _step_failed(record, request, code))


PLAN_REJECTED = "plan_rejected"
STEP_REJECTED = "step_rejected"
REJECT = APPROVAL_CHOICES[1]
_WHY = {
    InputTimedOut.default_code: "nobody answered {request} before it expired",
    PLAN_REJECTED: "the plan was rejected ({request})",
    STEP_REJECTED: "the step was rejected ({request})",
}


def _error(code: str, request_id: str) -> ErrorInfo:
    return ErrorInfo(code=code, message=_WHY[code].format(request=request_id), error_class="logic")


def _step_failed(record: WorkflowRecord, request: InputRequest, code: str) -> StepFailed:
    step = record.step(request.step_id or "")
    return StepFailed(
        event_id=derived_event_id(record.workflow_id, "settled", request.request_id),
        workflow_id=record.workflow_id,
        tenant_id=record.tenant_id,
        step_id=request.step_id or "",
        error=_error(code, request.request_id),
        attempt=max(step.attempt, 1) if step is not None else 1,
        iterations=step.checkpoint.iterations if step and step.checkpoint else 0,
    )


def _workflow_failed(record: WorkflowRecord, code: str) -> WorkflowFailed:
    request = next((r for r in record.open_inputs if r.kind == "plan_approval"), None)
    return WorkflowFailed(
        event_id=derived_event_id(record.workflow_id, "final"),
        workflow_id=record.workflow_id,
        tenant_id=record.tenant_id,
        error=_error(code, request.request_id if request else "the plan's approval"),
    )


def _resume(
    record: WorkflowRecord, request: InputRequest, answered: InputAnswered
) -> StepDispatched:
    """The dispatch that resumes the paused step: as the planner stored it, with an id of
    its own (one per request) so that it is not mistaken for the first dispatch."""
    step = record.step(request.step_id or "")
    assert step is not None, "a question belongs to a stored step"
    return StepDispatched(
        event_id=derived_event_id(record.workflow_id, "resume", step.step_id, request.request_id),
        workflow_id=record.workflow_id,
        tenant_id=record.tenant_id,
        causation_id=answered.event_id,
        step=step.as_planned(),
        task=record.task,
        inputs=recorded_inputs(record, step),
    )
