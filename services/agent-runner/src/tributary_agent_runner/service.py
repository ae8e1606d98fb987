"""The agent-runner: runs dispatched steps and records each outcome exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from tributary_agent_runner.call_history import StepCallHistory
from tributary_agent_runner.loop import StepOutcome, run_agent
from tributary_agent_runner.settings import AgentSettings
from tributary_agent_runner.tools.mcp_tools import McpToolset
from tributary_agent_runner.tools.registry import ToolRegistry
from tributary_shared.core import machine
from tributary_shared.core.errors import LogicError, recovery_for
from tributary_shared.core.events import (
    AnyEvent,
    StepCompleted,
    StepDispatched,
    StepFailed,
    StepStarted,
    derived_event_id,
)
from tributary_shared.core.machine import TransitionConflict
from tributary_shared.core.ports import Ports
from tributary_shared.core.status import WorkflowStatus
from tributary_shared.runtime.control import WorkflowControl
from tributary_shared.runtime.llm.metered import WorkflowLLMs
from tributary_shared.runtime.metrics import AGENT_ITERATIONS_COUNT

log = logging.getLogger(__name__)


class AgentRunner:
    def __init__(
        self,
        ports: Ports,
        *,
        llms: WorkflowLLMs,
        tools: ToolRegistry,
        settings: AgentSettings,
        mcp: McpToolset | None = None,
    ) -> None:
        self._mcp = mcp
        self._ports = ports
        self._control = WorkflowControl.over(ports)
        self._store = ports.store
        self._publisher = ports.publisher
        self._llms = llms
        self._tools = tools
        self._settings = settings
        self._running: dict[str, set[asyncio.Task[StepOutcome]]] = {}
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._mcp is not None:
            await self._mcp.start()
        self._listener = asyncio.create_task(
            self._listen_for_cancellations(), name="cancellation-listener"
        )

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._mcp is not None:
            await self._mcp.aclose()
        await self._llms.close()

    async def _listen_for_cancellations(self) -> None:
        """Stop a cancelled or timed-out workflow's running steps at once."""
        async for workflow_id in self._ports.cancellations.listen():
            for task in list(self._running.get(workflow_id, ())):
                task.cancel()

    async def _checkpoint(self, workflow_id: str) -> None:
        status, deadline = await self._store.status(workflow_id)
        if status is not WorkflowStatus.RUNNING:
            raise LogicError(f"the workflow is {status or 'gone'}", code="workflow_ended")
        if deadline is not None and time.time() > deadline:
            raise LogicError("the workflow's deadline has passed", code="deadline_exceeded")

    async def handle(self, event: AnyEvent) -> None:
        if isinstance(event, StepDispatched):
            await self._run_step(event)

    async def _run_step(self, dispatched: StepDispatched) -> None:
        step_id = dispatched.step.step_id
        extra = {"step_id": step_id}
        record = await self._store.get_workflow(dispatched.workflow_id)
        if record is None:
            log.warning("step for an unknown workflow skipped", extra=extra)
            return
        current = next((s for s in record.steps if s.step_id == step_id), None)
        if current is None:
            log.warning("step not in the workflow's plan skipped", extra=extra)
            return
        if current.status.terminal:
            # Finished before a crash: make sure its outcome left, then stop.
            if current.outcome is not None:
                await self._publisher.publish([current.outcome])
            return
        if record.status is not WorkflowStatus.RUNNING:
            log.info("step skipped: workflow is %s", record.status, extra=extra)
            return

        attempt = current.attempt + 1
        started = StepStarted(
            event_id=derived_event_id(dispatched.event_id, "started", str(attempt)),
            workflow_id=dispatched.workflow_id,
            tenant_id=dispatched.tenant_id,
            causation_id=dispatched.event_id,
            step_id=step_id,
            attempt=attempt,
        )
        try:
            await self._store.apply(machine.start_step(started))
        except TransitionConflict:
            return
        await self._publisher.publish([started])

        agent = asyncio.create_task(
            run_agent(
                llm=self._llms.for_workflow(
                    dispatched.workflow_id,
                    dispatched.tenant_id,
                    complexity=dispatched.step.complexity,
                ),
                tools=self._tools,
                step=dispatched.step,
                task=dispatched.task,
                inputs=dispatched.inputs,
                max_iterations=self._settings.max_iterations,
                history=StepCallHistory(
                    self._ports.calls,
                    self._ports.effects,
                    workflow_id=dispatched.workflow_id,
                    step_id=step_id,
                ),
                repeat_limit=self._settings.loop_repeat_limit,
                checkpoint=lambda: self._checkpoint(dispatched.workflow_id),
            )
        )
        running = self._running.setdefault(dispatched.workflow_id, set())
        running.add(agent)
        try:
            run = await agent
        except asyncio.CancelledError:
            this_task = asyncio.current_task()
            if this_task is not None and this_task.cancelling():
                raise  # this process is shutting down: the step is redelivered
            log.info("step stopped: the workflow was cancelled or timed out", extra=extra)
            return
        finally:
            running.discard(agent)
            if not running:
                self._running.pop(dispatched.workflow_id, None)

        common = {
            "event_id": derived_event_id(dispatched.event_id, "outcome"),
            "workflow_id": dispatched.workflow_id,
            "tenant_id": dispatched.tenant_id,
            "causation_id": dispatched.event_id,
            "step_id": step_id,
            "iterations": run.iterations,
            "attempt": attempt,
            "usage": run.usage,
            "models": tuple(run.models),
        }
        outcome: StepCompleted | StepFailed
        if run.error is None and run.result is not None:
            outcome = StepCompleted(result=run.result, **common)
            AGENT_ITERATIONS_COUNT.labels("completed").observe(run.iterations)
        else:
            assert run.error is not None
            outcome = StepFailed(error=run.error.to_info(), **common)
            AGENT_ITERATIONS_COUNT.labels("failed").observe(run.iterations)
            log.warning(
                "step failed: %s", run.error.code, extra={**extra, "error_code": run.error.code}
            )
        try:
            await self._store.apply(machine.finish_step(outcome))
        except TransitionConflict:
            log.info("step outcome refused: the workflow moved on", extra=extra)
            return
        await self._publisher.publish([outcome])
        log.info("step %s after %d iterations", outcome.type, run.iterations, extra=extra)
        if run.error is not None and recovery_for(run.error).fails_workflow:
            # A bad key or an unknown model would fail every step: stop the workflow.
            await self._control.fail(
                dispatched.workflow_id,
                tenant_id=dispatched.tenant_id,
                error=run.error.to_info(),
                causation_id=dispatched.event_id,
            )
