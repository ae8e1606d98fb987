"""Ending a workflow from outside its normal flow: cancellation and deadlines.

Both are one transition of the machine (refused once the workflow has ended), a
cancellation signal so agent-runners stop the workflow's running steps
at once (in-flight LLM calls included), and the terminal event on Kafka.
Replicas that miss the signal still stop: the agent loop checks the
workflow's status before every LLM call.
"""

from __future__ import annotations

import logging

from tributary_shared.core import machine
from tributary_shared.core.events import (
    ErrorInfo,
    WorkflowCancelled,
    WorkflowFailed,
    WorkflowRequested,
    derived_event_id,
)
from tributary_shared.core.machine import TransitionConflict
from tributary_shared.core.ports import CancellationSignal, EventPublisher, Ports, WorkflowStore
from tributary_shared.core.records import WorkflowRecord
from tributary_shared.runtime.metrics import WORKFLOW_STATUS_TOTAL
from tributary_shared.runtime.settings import WorkflowDefaults

log = logging.getLogger(__name__)


class WorkflowControl:
    def __init__(
        self,
        *,
        store: WorkflowStore,
        publisher: EventPublisher,
        cancellations: CancellationSignal,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._cancellations = cancellations

    @classmethod
    def over(cls, ports: Ports) -> WorkflowControl:
        return cls(store=ports.store, publisher=ports.publisher, cancellations=ports.cancellations)

    async def cancel(
        self,
        workflow_id: str,
        *,
        tenant_id: str,
        reason: str,
        causation_id: str | None = None,
    ) -> bool:
        """True when this call cancelled it; False when it had already ended."""
        cancelled = WorkflowCancelled(
            event_id=derived_event_id(workflow_id, "final"),
            workflow_id=workflow_id,
            tenant_id=tenant_id,
            causation_id=causation_id,
            reason=reason,
        )
        try:
            await self._store.apply(machine.cancel(cancelled))
        except TransitionConflict:
            return False
        WORKFLOW_STATUS_TOTAL.labels("cancelled").inc()
        await self._announce_end(cancelled)
        log.info("workflow cancelled", extra={"workflow_id": workflow_id})
        return True

    async def fail(
        self,
        workflow_id: str,
        *,
        tenant_id: str,
        error: ErrorInfo,
        causation_id: str | None = None,
        planner: str | None = None,
    ) -> bool:
        """Fail an active workflow and stop its running steps; False when it had ended.

        A ``planner`` (its planning lease's token) fails planning only while it still
        holds that lease: False too once another planner took over.
        """
        failed = WorkflowFailed(
            event_id=derived_event_id(workflow_id, "final"),
            workflow_id=workflow_id,
            tenant_id=tenant_id,
            causation_id=causation_id,
            error=error,
        )
        transition = (
            machine.fail(failed)
            if planner is None
            else machine.fail_planning(failed, owner=planner)
        )
        try:
            await self._store.apply(transition)
        except TransitionConflict:
            return False
        WORKFLOW_STATUS_TOTAL.labels("failed").inc()
        await self._announce_end(failed)
        log.info("workflow failed: %s", error.code, extra={"workflow_id": workflow_id})
        return True

    async def expire(self, workflow_id: str, *, tenant_id: str, deadline_s: float | None) -> bool:
        """Fail a workflow that ran past its deadline; False when it had already ended."""
        limit = f" of {deadline_s:g}s" if deadline_s is not None else ""
        error = ErrorInfo(
            code="deadline_exceeded",
            message=f"the workflow did not finish within its deadline{limit}",
            error_class="logic",
        )
        failed = await self.fail(workflow_id, tenant_id=tenant_id, error=error)
        if not failed:
            await self._store.forget_deadline(workflow_id)
        return failed

    async def _announce_end(self, final: WorkflowCancelled | WorkflowFailed) -> None:
        """Tell running steps and Kafka; the end itself is already recorded.

        Neither may undo or fail it: a step that misses the signal stops at its
        next checkpoint, and a final event that cannot be published now is sent
        by the planner's sweep of unsent events.
        """
        try:
            await self._cancellations.announce(final.workflow_id)
        except Exception:
            log.warning("running steps were not signalled; they stop at their next checkpoint")
        try:
            await self._publisher.publish([final])
        except Exception:
            log.warning("%s not published now; the unsent sweep sends it", final.type)


def deadline_s_of(record: WorkflowRecord) -> float | None:
    """The seconds the workflow was given, from its acceptance to its deadline."""
    if record.deadline_at is None:
        return None
    return record.deadline_at - record.created_at.timestamp()


def deadline_at(request: WorkflowRequested, defaults: WorkflowDefaults) -> float:
    """Epoch seconds by which the workflow must end, counted from its acceptance."""
    seconds = request.options.deadline_s or defaults.default_deadline_s
    return request.occurred_at.timestamp() + seconds
