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
from tributary_shared.core.errors import InputTimedOut
from tributary_shared.core.events import (
    InputAnswered,
    InputSource,
    StepDispatched,
    StepFailed,
    derived_event_id,
)
from tributary_shared.core.machine import TransitionConflict
from tributary_shared.core.ports import EventPublisher, WorkflowStore
from tributary_shared.core.provenance import recorded_inputs
from tributary_shared.core.records import InputRequest, WorkflowRecord

__all__ = ["InputRefused", "Refusal", "WorkflowInputs"]

log = logging.getLogger(__name__)


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
        record = await self._store.get_workflow(workflow_id)
        request = _open_request(record, workflow_id, request_id, now=self._clock())
        assert record is not None
        if request.choices is not None and answer not in request.choices:
            raise InputRefused(
                Refusal.NOT_A_CHOICE, f"the answer must be one of {list(request.choices)}"
            )
        answered = InputAnswered(
            event_id=derived_event_id(workflow_id, "answer", request_id),
            workflow_id=workflow_id,
            tenant_id=record.tenant_id,
            causation_id=causation_id,
            request_id=request_id,
            step_id=request.step_id,
            answer=answer,
            source=source,
        )
        redispatch = _resume(record, request, answered)
        transition = machine.answer_input(request, answered, redispatch)
        try:
            await self._store.apply(transition)
        except TransitionConflict:
            # Settled, or the workflow ended, since it was read: say which.
            latest = await self._store.get_workflow(workflow_id)
            _open_request(latest, workflow_id, request_id, now=self._clock())
            raise
        await self._publish([answered, redispatch])
        assert transition.input_request is not None
        return transition.input_request

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
        events: list[InputAnswered | StepDispatched | StepFailed]
        if request.timeout_answer is None:
            step = record.step(request.step_id or "")
            error = InputTimedOut(
                f"nobody answered the question {request_id} before it expired"
            ).to_info()
            failed = StepFailed(
                event_id=derived_event_id(workflow_id, "expired", request_id),
                workflow_id=workflow_id,
                tenant_id=record.tenant_id,
                step_id=request.step_id or "",
                error=error,
                attempt=step.attempt if step is not None else 1,
                iterations=step.checkpoint.iterations if step and step.checkpoint else 0,
            )
            transition = machine.expire_input(request, failed)
            events = [failed]
        else:
            answered = InputAnswered(
                event_id=derived_event_id(workflow_id, "answer", request_id),
                workflow_id=workflow_id,
                tenant_id=record.tenant_id,
                request_id=request_id,
                step_id=request.step_id,
                answer=request.timeout_answer,
                source="timeout",
            )
            redispatch = _resume(record, request, answered)
            transition = machine.expire_input(request, (answered, redispatch))
            events = [answered, redispatch]
        try:
            await self._store.apply(transition)
        except TransitionConflict:
            await self._store.forget_input_expiry(workflow_id, request_id)
            return False
        log.info("input request %s expired", request_id, extra={"workflow_id": workflow_id})
        await self._publish(events)
        return True

    async def _publish(self, events: list[InputAnswered | StepDispatched | StepFailed]) -> None:
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
