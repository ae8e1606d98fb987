"""The synthesizer: when every step of a workflow is done, writes the final answer."""

from __future__ import annotations

import logging
from datetime import datetime

from tributary_shared.errors import TributaryError
from tributary_shared.events import (
    AnyEvent,
    ErrorInfo,
    StepCompleted,
    StepFailed,
    SynthesisStarted,
    WorkflowCompleted,
    WorkflowFailed,
    decode_event,
    derived_event_id,
    utc_now,
)
from tributary_shared.llm import LLMClient
from tributary_shared.metrics import WORKFLOW_DURATION_SECONDS, WORKFLOW_STATUS_TOTAL
from tributary_shared.state import TransitionConflict, WorkflowRecord
from tributary_shared.state.status import StepStatus, WorkflowStatus
from tributary_shared.worker import WorkerResources
from tributary_synthesizer.synthesis import first_failure, is_partial, synthesis_messages

log = logging.getLogger(__name__)


class Synthesizer:
    def __init__(self, resources: WorkerResources, *, llm: LLMClient) -> None:
        self._store = resources.store
        self._publisher = resources.publisher
        self._llm = llm

    async def close(self) -> None:
        await self._llm.close()

    async def handle(self, event: AnyEvent) -> None:
        if isinstance(event, StepCompleted | StepFailed):
            await self._on_step_finished(event)

    async def _on_step_finished(self, event: StepCompleted | StepFailed) -> None:
        record = await self._store.get_workflow(event.workflow_id)
        if record is None:
            return
        if record.status.terminal:
            # Finished before a crash: make sure the final event left.
            if record.final_event is not None:
                await self._publisher.publish([decode_event(record.final_event)])
            return
        if not record.all_steps_finished:
            return
        if record.status is WorkflowStatus.RUNNING:
            started = SynthesisStarted(
                event_id=derived_event_id(event.workflow_id, "synthesis"),
                workflow_id=event.workflow_id,
                tenant_id=event.tenant_id,
                causation_id=event.event_id,
            )
            try:
                await self._store.start_synthesis(started)
            except TransitionConflict:
                return
            await self._publisher.publish([started])
        elif record.status is not WorkflowStatus.SYNTHESIZING:
            return
        await self._synthesize(record, cause=event)

    async def _synthesize(self, record: WorkflowRecord, *, cause: AnyEvent) -> None:
        common = {
            "workflow_id": record.workflow_id,
            "tenant_id": record.tenant_id,
            "causation_id": cause.event_id,
        }
        final: WorkflowCompleted | WorkflowFailed
        if not any(step.status is StepStatus.COMPLETED for step in record.steps):
            failure = first_failure(record.steps) or {}
            final = WorkflowFailed(
                event_id=derived_event_id(record.workflow_id, "final"),
                error=ErrorInfo(
                    code="all_steps_failed",
                    message=f"every step failed; the first: {failure.get('message', 'unknown')}",
                    error_class=str(failure.get("error_class", "internal")),
                ),
                **common,
            )
        else:
            try:
                completion = await self._llm.complete(
                    role="synthesizer", messages=synthesis_messages(record.task, record.steps)
                )
                final = WorkflowCompleted(
                    event_id=derived_event_id(record.workflow_id, "final"),
                    result=(completion.content or "").strip(),
                    partial=is_partial(record.steps),
                    usage=completion.usage,
                    **common,
                )
            except TributaryError as error:
                final = WorkflowFailed(
                    event_id=derived_event_id(record.workflow_id, "final"),
                    error=error.to_info(),
                    **common,
                )
        try:
            if isinstance(final, WorkflowCompleted):
                await self._store.complete_workflow(final)
            else:
                await self._store.fail_workflow(final)
        except TransitionConflict:
            return
        status = "completed" if isinstance(final, WorkflowCompleted) else "failed"
        WORKFLOW_STATUS_TOTAL.labels(status).inc()
        WORKFLOW_DURATION_SECONDS.labels(status).observe(_age_s(record.created_at))
        log.info("workflow %s", status)
        await self._publisher.publish([final])


def _age_s(created_at: str) -> float:
    try:
        return max(0.0, (utc_now() - datetime.fromisoformat(created_at)).total_seconds())
    except ValueError:
        return 0.0
