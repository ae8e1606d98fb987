"""The synthesizer: when every step of a workflow is done, writes the final answer.

It reads the steps' results from the workflow store, never from the message
that woke it: a step result of another tenant, or one unlike the outcome the
store recorded, is refused (``core.provenance``) and dead-lettered, and the
workflow goes on untouched.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from tributary_shared.core import machine
from tributary_shared.core.errors import BudgetExceeded, DeadlineExceeded, TributaryError
from tributary_shared.core.events import (
    AnyEvent,
    ErrorInfo,
    StepCompleted,
    StepFailed,
    SynthesisStarted,
    WorkflowCompleted,
    WorkflowFailed,
    derived_event_id,
    utc_now,
)
from tributary_shared.core.machine import TransitionConflict
from tributary_shared.core.ports import Ports
from tributary_shared.core.provenance import result_refusal
from tributary_shared.core.records import WorkflowRecord
from tributary_shared.core.status import StepStatus, WorkflowStatus
from tributary_shared.runtime.control import WorkflowControl, deadline_s_of
from tributary_shared.runtime.llm.metered import WorkflowLLMs
from tributary_shared.runtime.metrics import WORKFLOW_DURATION_SECONDS, WORKFLOW_STATUS_TOTAL
from tributary_synthesizer.synthesis import (
    first_failure,
    is_partial,
    partial_answer,
    synthesis_messages,
)

log = logging.getLogger(__name__)


class Synthesizer:
    def __init__(self, ports: Ports, *, llms: WorkflowLLMs) -> None:
        self._control = WorkflowControl.over(ports)
        self._store = ports.store
        self._budgets = ports.budgets
        self._publisher = ports.publisher
        self._llms = llms

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        await self._llms.close()

    async def handle(self, event: AnyEvent) -> None:
        if isinstance(event, StepCompleted | StepFailed):
            await self._on_step_finished(event)

    async def _on_step_finished(self, event: StepCompleted | StepFailed) -> None:
        record = await self._store.get_workflow(event.workflow_id)
        if record is None:
            return
        refused = result_refusal(event, record)
        if refused is not None:
            raise refused
        if record.status.terminal:
            await self._republish_final(record, cause=event)
            return
        if not record.all_steps_finished:
            return
        if record.deadline_at is not None and time.time() > record.deadline_at:
            # Past its deadline a workflow gets no answer (its last steps may have
            # waited for the model until then).
            await self._expire(record)
            return
        if record.status is WorkflowStatus.RUNNING:
            started = SynthesisStarted(
                event_id=derived_event_id(event.workflow_id, "synthesis"),
                workflow_id=event.workflow_id,
                tenant_id=record.tenant_id,
                causation_id=event.event_id,
            )
            try:
                await self._store.apply(machine.start_synthesis(started))
            except TransitionConflict:
                return
            await self._publisher.publish([started])
        elif record.status is not WorkflowStatus.SYNTHESIZING:
            return
        await self._synthesize(record, cause=event)

    async def _expire(self, record: WorkflowRecord) -> None:
        """Fail the workflow for its deadline, as the planner's deadline sweep fails it,
        whichever of the two comes first."""
        await self._control.expire(
            record.workflow_id, tenant_id=record.tenant_id, deadline_s=deadline_s_of(record)
        )

    async def _republish_final(self, record: WorkflowRecord, *, cause: AnyEvent) -> None:
        """If this very event led to the final result before a crash, the final event
        may not have left: send it again (same id). Other step results are not
        redeliveries and change nothing."""
        final = record.final_event
        if final is not None and final.causation_id == cause.event_id:
            await self._publisher.publish([final])

    @staticmethod
    def _out_of_budget(
        record: WorkflowRecord, policy: str, common: dict[str, str | None]
    ) -> WorkflowCompleted | WorkflowFailed:
        """No LLM call may start: answer from the finished steps, or fail, as configured."""
        event_id = derived_event_id(record.workflow_id, "final")
        if policy == "fail":
            return WorkflowFailed(
                event_id=event_id,
                error=ErrorInfo(
                    code="budget_exhausted",
                    message="the workflow's budget ran out before it finished",
                    error_class="logic",
                ),
                **common,
            )
        return WorkflowCompleted(
            event_id=event_id, result=partial_answer(record.steps), partial=True, **common
        )

    async def _synthesize(self, record: WorkflowRecord, *, cause: AnyEvent) -> None:
        common: dict[str, str | None] = {
            "workflow_id": record.workflow_id,
            "tenant_id": record.tenant_id,
            "causation_id": cause.event_id,
        }
        final: WorkflowCompleted | WorkflowFailed
        budget = await self._budgets.state(record.workflow_id)
        completed = any(step.status is StepStatus.COMPLETED for step in record.steps)
        if not completed:
            failure = first_failure(record.steps)
            final = WorkflowFailed(
                event_id=derived_event_id(record.workflow_id, "final"),
                error=ErrorInfo(
                    code="all_steps_failed",
                    message="every step failed; the first: "
                    + (failure.message if failure else "unknown"),
                    error_class=failure.error_class if failure else "internal",
                ),
                **common,
            )
        elif budget.exhausted:
            final = self._out_of_budget(record, budget.policy, common)
        else:
            llm = self._llms.for_workflow(
                record.workflow_id, record.tenant_id, deadline_at=record.deadline_at
            )
            try:
                completion = await llm.complete(
                    role="synthesizer", messages=synthesis_messages(record.task, record.steps)
                )
                final = WorkflowCompleted(
                    event_id=derived_event_id(record.workflow_id, "final"),
                    result=(completion.content or "").strip(),
                    partial=is_partial(record.steps),
                    usage=completion.usage,
                    **common,
                )
            except BudgetExceeded as refused:
                if refused.busy:
                    # The budget is not used up: a call still in flight (another
                    # delivery's synthesis) holds it. Cutting the answer short
                    # would be wrong; the delivery is retried once it settles.
                    raise
                final = self._out_of_budget(record, budget.policy, common)
            except DeadlineExceeded:
                # The model was away until the deadline: the failure the sweep gives.
                await self._expire(record)
                return
            except TributaryError as error:
                final = WorkflowFailed(
                    event_id=derived_event_id(record.workflow_id, "final"),
                    error=error.to_info(),
                    **common,
                )
        try:
            if isinstance(final, WorkflowCompleted):
                await self._store.apply(machine.complete(final))
            else:
                await self._store.apply(machine.fail(final))
        except TransitionConflict:
            return
        status = "completed" if isinstance(final, WorkflowCompleted) else "failed"
        WORKFLOW_STATUS_TOTAL.labels(status).inc()
        WORKFLOW_DURATION_SECONDS.labels(status).observe(_age_s(record.created_at))
        log.info("workflow %s", status)
        await self._publisher.publish([final])


def _age_s(created_at: datetime) -> float:
    return max(0.0, (utc_now() - created_at).total_seconds())
