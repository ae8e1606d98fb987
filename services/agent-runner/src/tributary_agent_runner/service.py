"""The agent-runner: runs dispatched steps and records each outcome exactly once.

A step runs as the planner stored it, never as a message says: a dispatch
whose tenant, step, task or inputs differ from the store is refused
(``core.provenance``) and dead-lettered, and its workflow goes on untouched.

A step runs under a lease (``core.machine``): one runner at a time holds it,
renews it while the agent works, and alone may record the outcome. A second
delivery of the same step (a rebalance, a redelivery after a crash) waits for
the holder instead of starting a second agent, and takes over when the
holder's lease lapses or is given up.

A step whose agent asks a person (``ask_human``) pauses: one transition opens
the input request, keeps the conversation as the step's checkpoint and gives
the lease up, and the delivery ends. The answer dispatches the step again; the
runner that takes it resumes from the checkpoint with the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from tributary_agent_runner.call_history import StepCallHistory
from tributary_agent_runner.loop import Checkpoint, Pause, Resume, StepOutcome, run_agent
from tributary_agent_runner.settings import AgentSettings
from tributary_agent_runner.tools.mcp_tools import McpToolset
from tributary_agent_runner.tools.registry import ToolRegistry
from tributary_shared.core import machine
from tributary_shared.core.errors import DeadlineExceeded, LogicError, recovery_for
from tributary_shared.core.events import (
    APPROVAL_CHOICES,
    ON_INPUT_TIMEOUT_FAIL,
    AnyEvent,
    InputKind,
    InputRequested,
    StepCompleted,
    StepDispatched,
    StepFailed,
    StepStarted,
    WorkflowOptions,
    derived_event_id,
    utc_now,
)
from tributary_shared.core.machine import TransitionConflict
from tributary_shared.core.ports import Ports
from tributary_shared.core.provenance import dispatch_refusal, recorded_dispatch
from tributary_shared.core.records import WorkflowRecord
from tributary_shared.core.status import STEPS_MAY_RUN, StepStatus
from tributary_shared.runtime.control import WorkflowControl, deadline_s_of
from tributary_shared.runtime.llm.metered import WorkflowLLMs
from tributary_shared.runtime.logs import step_context
from tributary_shared.runtime.metrics import AGENT_ITERATIONS_COUNT, STEP_DURATION_SECONDS
from tributary_shared.runtime.retry import ride_out_outages
from tributary_shared.runtime.settings import WorkflowDefaults

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Claim:
    """A step this runner holds the lease of, to run as attempt ``started.attempt``."""

    started: StepStarted
    owner: str
    dispatched: StepDispatched
    """The dispatch as the store records the step (not as the message said it)."""
    deadline_at: float | None
    """The workflow's deadline: its LLM calls wait out the endpoint no longer."""
    deadline_s: float | None
    """The seconds it was given, for the error that says the deadline passed."""
    options: WorkflowOptions
    """The workflow's options (its input timeout and policy, for a pause)."""
    approved: bool
    """Whether a person approved the step (what a step that needs approval waits for).
    The claim keeps these, not the workflow's whole record: thousands of steps wait
    on the model at once, each holding its claim."""
    resume: Resume | None = None
    """Where the step paused and the answer it got; None runs it from the start."""
    claimed_at: float = field(default_factory=time.monotonic)
    """When the store last showed the workflow running (monotonic seconds)."""


class AgentRunner:
    def __init__(
        self,
        ports: Ports,
        *,
        llms: WorkflowLLMs,
        tools: ToolRegistry,
        settings: AgentSettings,
        mcp: McpToolset | None = None,
        defaults: WorkflowDefaults | None = None,
        clock: Callable[[], float] = time.time,
        outage_patience_s: float = 600.0,
    ) -> None:
        self._mcp = mcp
        self._ports = ports
        self._control = WorkflowControl.over(ports)
        self._store = ports.store
        self._publisher = ports.publisher
        self._llms = llms
        self._tools = tools
        self._settings = settings
        self._defaults = defaults or WorkflowDefaults()
        self._running: dict[str, set[asyncio.Task[StepOutcome]]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._clock = clock
        self._outage_patience_s = outage_patience_s
        # Names this replica in lease tokens, for the logs of whoever finds one.
        self._instance = f"{socket.gethostname()}:{os.getpid()}"

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

    def _checkpoint(self, claim: _Claim) -> Checkpoint:
        """What the step checks before each LLM call: the deadline every time, the
        workflow's status when it was last seen running more than
        ``status_recheck_s`` ago (first seen when the step was claimed)."""
        workflow_id = claim.dispatched.workflow_id
        seen_running_at = claim.claimed_at
        deadline = claim.deadline_at

        async def check() -> None:
            nonlocal seen_running_at, deadline
            if time.monotonic() - seen_running_at >= self._settings.status_recheck_s:
                # A Redis blip here waits in place: failing would restart the step's calls.
                status, deadline = await ride_out_outages(
                    lambda: self._store.status(workflow_id),
                    what="checking the workflow before an LLM call",
                    patience_s=self._outage_patience_s,
                )
                if status not in STEPS_MAY_RUN:
                    raise LogicError(f"the workflow is {status or 'gone'}", code="workflow_ended")
                seen_running_at = time.monotonic()
            if deadline is not None and time.time() > deadline:
                raise DeadlineExceeded("the workflow's deadline has passed")

        return check

    async def handle(self, event: AnyEvent) -> None:
        if isinstance(event, StepDispatched):
            with step_context(event.step.step_id):  # its log lines name the step
                await self._run_step(event)

    async def _run_step(self, dispatched: StepDispatched) -> None:
        claim = await self._claim(dispatched)
        if claim is None:
            return
        try:
            await self._run_claimed(claim)
        except Exception:
            # The delivery fails and is retried (an outage, a bug): let go of the
            # step so that the retry takes it over at once, not after the lease.
            await self._release(claim.dispatched, claim.owner)
            raise

    async def _run_claimed(self, claim: _Claim) -> None:
        # From here on, the step as the store records it: nothing the message said.
        dispatched, started, owner = claim.dispatched, claim.started, claim.owner
        extra = {"step_id": dispatched.step.step_id}
        # step.started is in the log and noted in the outbox already: its publish runs
        # beside the agent's first calls, and is awaited before the outcome is written.
        announced = self._announce(started)
        if dispatched.step.needs_approval and not claim.approved:
            await asyncio.wait({announced})
            await self._ask_approval(claim)  # before any LLM call: nothing runs unapproved
            return
        with step_context(dispatched.step.step_id):  # the agent's task copies it
            agent = asyncio.create_task(self._run_agent(claim))
        keeper = asyncio.create_task(self._keep_lease(dispatched, owner, agent))
        running = self._running.setdefault(dispatched.workflow_id, set())
        running.add(agent)
        began = time.monotonic()
        try:
            run = await agent
        except asyncio.CancelledError:
            STEP_DURATION_SECONDS.labels("stopped").observe(time.monotonic() - began)
            this_task = asyncio.current_task()
            if this_task is not None and this_task.cancelling():
                # Shutdown or a revoked partition: let go of the step so that its
                # redelivery, here or on another replica, takes it over at once.
                await self._release(dispatched, owner)
                raise
            log.info("step stopped: the workflow ended or the lease was lost", extra=extra)
            return
        finally:
            keeper.cancel()
            running.discard(agent)
            if not running:
                self._running.pop(dispatched.workflow_id, None)
        await asyncio.wait({announced})  # the outcome goes out after the start
        if run.pause is not None:
            await self._pause(dispatched, run, claim)
            return
        outcome = "completed" if run.error is None and run.result is not None else "failed"
        STEP_DURATION_SECONDS.labels(outcome).observe(time.monotonic() - began)
        await self._record_outcome(dispatched, run, claim)

    def _announce(self, started: StepStarted) -> asyncio.Task[None]:
        """Publish step.started beside the step's first work; a publish that fails is
        logged and left to the outbox, which noted the event with the claim."""
        task = asyncio.create_task(self._publisher.publish([started]))

        def told(done: asyncio.Task[None]) -> None:
            if not done.cancelled() and done.exception() is not None:
                log.warning(
                    "step.started was not published now; the outbox sends it later",
                    extra={"step_id": started.step_id},
                )

        task.add_done_callback(told)
        return task

    async def _ask_approval(self, claim: _Claim) -> None:
        """Pause a step that needs approval before it runs, with a step_approval request."""
        step = claim.dispatched.step
        request_id = "in_" + derived_event_id(
            claim.dispatched.workflow_id, step.step_id, "approval"
        )
        pause = StepOutcome(
            result=None,
            error=None,
            iterations=0,
            pause=Pause(
                tool_call_id="",
                question=f"Approve step {step.index + 1} before it runs? {step.title}",
                choices=APPROVAL_CHOICES,
                messages=(),
            ),
        )
        await self._pause(
            claim.dispatched, pause, claim, request_id=request_id, kind="step_approval"
        )

    async def _pause(
        self,
        dispatched: StepDispatched,
        run: StepOutcome,
        claim: _Claim,
        *,
        request_id: str | None = None,
        kind: InputKind = "question",
    ) -> None:
        """Open the input request, keep the conversation and let go of the step, at once."""
        assert run.pause is not None
        step_id = dispatched.step.step_id
        options = claim.options
        request_id = request_id or "in_" + derived_event_id(
            dispatched.workflow_id, step_id, str(claim.started.attempt), run.pause.tool_call_id
        )
        now = utc_now()
        timeout_s = options.input_timeout_s or self._defaults.input_timeout_s
        policy = options.on_input_timeout or self._defaults.on_input_timeout
        requested = InputRequested(
            event_id=derived_event_id(dispatched.workflow_id, "asked", request_id),
            workflow_id=dispatched.workflow_id,
            tenant_id=claim.started.tenant_id,
            causation_id=claim.started.event_id,
            occurred_at=now,
            request_id=request_id,
            kind=kind,
            step_id=step_id,
            question=run.pause.question,
            choices=run.pause.choices,
            requested_at=now,
            expires_at=now + timedelta(seconds=timeout_s) if timeout_s else None,
        )
        pause = machine.pause_step(
            requested,
            run.checkpoint(request_id),
            owner=claim.owner,
            timeout_answer=None if policy == ON_INPUT_TIMEOUT_FAIL else policy,
        )
        try:
            await self._store.apply(pause)
        except TransitionConflict:
            log.info(
                "pause refused: the workflow moved on or the lease was lost",
                extra={"step_id": step_id},
            )
            return
        log.info("step paused for input %s", request_id, extra={"step_id": step_id})
        await self._publisher.publish([requested])

    async def _claim(self, dispatched: StepDispatched) -> _Claim | None:
        """Take the step's lease, or None when there is nothing to run; with the lease,
        the dispatch rebuilt from the store.

        A dispatch unlike the stored plan raises ``EventRefused``. A step leased
        by a live runner (another replica, or this one before a rebalance) is not
        started again: this delivery waits until that runner records the outcome
        or its lease lapses.
        """
        step_id = dispatched.step.step_id
        extra = {"step_id": step_id}
        while True:
            record = await self._store.get_workflow(dispatched.workflow_id)
            if record is None:
                log.warning("step for an unknown workflow skipped", extra=extra)
                return None
            refused = dispatch_refusal(dispatched, record)
            if refused is not None:
                raise refused
            current = record.step(step_id)
            assert current is not None, "a dispatch that passed names a stored step"
            if current.status.terminal:
                # Finished before a crash: make sure its outcome left, then stop.
                if current.outcome is not None:
                    await self._publisher.publish([current.outcome])
                return None
            if current.status is StepStatus.AWAITING_INPUT:
                # Paused (again, or before this delivery): its answer dispatches it anew.
                log.info("step skipped: it waits for input", extra=extra)
                return None
            if record.status not in STEPS_MAY_RUN:
                log.info("step skipped: workflow is %s", record.status, extra=extra)
                return None
            now = self._clock()
            if current.leased_at(now):
                await asyncio.sleep(
                    min(current.lease_until - now, self._settings.step_lease_s / 3) + 0.01
                )
                continue
            owner = f"{self._instance}/{uuid.uuid4().hex}"
            attempt = current.attempt + 1
            started = StepStarted(
                event_id=derived_event_id(dispatched.event_id, "started", str(attempt)),
                workflow_id=dispatched.workflow_id,
                tenant_id=record.tenant_id,
                causation_id=dispatched.event_id,
                step_id=step_id,
                attempt=attempt,
            )
            lease_until = now + self._settings.step_lease_s
            try:
                await self._store.apply(
                    machine.start_step(started, owner=owner, lease_until=lease_until, now=now)
                )
            except TransitionConflict:
                continue  # taken or moved on meanwhile: look again
            return _Claim(
                started,
                owner,
                recorded_dispatch(dispatched, record),
                record.deadline_at,
                deadline_s_of(record),
                record.options,
                _approved(record, step_id),
                _resume_of(record, step_id),
            )

    async def _keep_lease(
        self, dispatched: StepDispatched, owner: str, agent: asyncio.Task[StepOutcome]
    ) -> None:
        """Renew the lease while the step runs; stop the step if the lease is lost."""
        step_id = dispatched.step.step_id
        while True:
            await asyncio.sleep(self._settings.step_lease_s / 3)
            renewal = machine.renew_lease(
                dispatched.workflow_id,
                step_id,
                owner=owner,
                lease_until=self._clock() + self._settings.step_lease_s,
            )
            try:
                await self._store.apply(renewal)
            except TransitionConflict:
                # Taken over after a lapse, or the workflow ended: the step must not
                # go on, and its outcome would be refused anyway.
                agent.cancel()
                return
            except Exception:
                log.warning("renewing a step lease failed; retrying", extra={"step_id": step_id})

    async def _release(self, dispatched: StepDispatched, owner: str) -> None:
        release = machine.release_lease(
            dispatched.workflow_id, dispatched.step.step_id, owner=owner
        )
        try:
            await asyncio.wait_for(self._store.apply(release), timeout=2.0)
        except Exception:  # best effort: otherwise the lease simply lapses
            log.info(
                "a step's lease was left to lapse",
                extra={"step_id": release.step.step_id if release.step else ""},
            )

    def _run_agent(self, claim: _Claim) -> Coroutine[Any, Any, StepOutcome]:
        dispatched, attempt = claim.dispatched, claim.started.attempt
        llm = self._llms.for_workflow(
            dispatched.workflow_id,
            dispatched.tenant_id,
            deadline_at=claim.deadline_at,
            complexity=dispatched.step.complexity,
            step_id=dispatched.step.step_id,
            attempt=attempt,
        )
        return run_agent(
            llm=llm,
            recorder=llm.recorder,
            tools=self._tools,
            step=dispatched.step,
            task=dispatched.task,
            inputs=dispatched.inputs,
            max_iterations=self._settings.max_iterations,
            history=StepCallHistory(
                self._ports.calls,
                self._ports.effects,
                workflow_id=dispatched.workflow_id,
                step_id=dispatched.step.step_id,
                attempt=attempt,
            ),
            repeat_limit=self._settings.loop_repeat_limit,
            checkpoint=self._checkpoint(claim),
            resume=claim.resume,
        )

    async def _record_outcome(
        self, dispatched: StepDispatched, run: StepOutcome, claim: _Claim
    ) -> None:
        attempt, owner = claim.started.attempt, claim.owner
        step_id = dispatched.step.step_id
        extra = {"step_id": step_id}
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
            "deployments": tuple(run.deployments),
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
            await self._store.apply(machine.finish_step(outcome, owner=owner))
        except TransitionConflict:
            log.info(
                "step outcome refused: the workflow moved on or the lease was lost", extra=extra
            )
            return
        await self._publisher.publish([outcome])
        log.info("step %s after %d iterations", outcome.type, run.iterations, extra=extra)
        if isinstance(run.error, DeadlineExceeded):
            # Every other step is past the same deadline: the workflow fails, as the
            # planner's deadline sweep would fail it (whichever comes first).
            await self._control.expire(
                dispatched.workflow_id, tenant_id=dispatched.tenant_id, deadline_s=claim.deadline_s
            )
        elif run.error is not None and recovery_for(run.error).fails_workflow:
            # A bad key or an unknown model would fail every step: stop the workflow.
            await self._control.fail(
                dispatched.workflow_id,
                tenant_id=dispatched.tenant_id,
                error=run.error.to_info(),
                causation_id=dispatched.event_id,
            )


def _approved(record: WorkflowRecord, step_id: str) -> bool:
    return any(
        r.kind == "step_approval" and r.step_id == step_id and r.answer == APPROVAL_CHOICES[0]
        for r in record.input_requests
    )


def _resume_of(record: WorkflowRecord, step_id: str) -> Resume | None:
    """Where the step paused and its answer, when it paused and was answered; a step
    that never paused, or is taken over mid-run after one, resumes from the same point."""
    step = record.step(step_id)
    if step is None or step.checkpoint is None:
        return None
    request = record.input_request(step.checkpoint.request_id)
    if request is None or request.answer is None or request.kind != "question":
        return None  # an approval: the step runs from its start
    return Resume(checkpoint=step.checkpoint, answer=request.answer)
