"""The planner: turns a workflow request into a validated plan and dispatches its steps.

Planning runs under the workflow's planning lease (``core.machine``): one
planner at a time holds it, renews it while the planning LLM calls run, and
alone may record the plan or fail planning. A second delivery of the request
(a rebalance, the unsent sweep sending a request again, a redelivery after a
crash) waits for the holder instead of asking the model a second time, and
takes over when the holder's lease lapses or is given up.

Every event it consumes is checked against the workflow store first
(``core.provenance``): a request, cancel or step result of another tenant, or a
step result unlike the stored outcome, is refused and dead-lettered, and the
workflow it names goes on untouched. A request for a workflow the store holds
is planned from the stored task and options, not the message's.

An integration's answer to an input request (``input.submitted``) settles it as
the gateway's ``POST /v1/workflows/{id}/input`` does (``runtime.inputs``); an
answer that cannot be taken is dead-lettered with the reason. The deadline
sweep also expires the input requests past their expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import operator
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from tributary_planner.dag import (
    DEPENDENCY_FAILED,
    doomed,
    releasable,
    released_before,
    skipped_before,
)
from tributary_planner.planning import (
    PLAN_SCHEMA_NAME,
    PlanDraft,
    correction_messages,
    plan_problems,
    planned_steps,
    planning_messages,
)
from tributary_planner.settings import PlannerSettings
from tributary_shared.core import machine
from tributary_shared.core.dispatch import step_dispatch
from tributary_shared.core.errors import (
    DeadlineExceeded,
    EventRefused,
    ModelError,
    TributaryError,
    recovery_for,
)
from tributary_shared.core.events import (
    APPROVAL_CHOICES,
    ON_INPUT_TIMEOUT_FAIL,
    AnyEvent,
    ErrorInfo,
    InputRequested,
    InputSubmitted,
    PlanCreated,
    StepCompleted,
    StepDispatched,
    StepFailed,
    TokenUsage,
    WorkflowCancelRequested,
    WorkflowRequested,
    derived_event_id,
    utc_now,
)
from tributary_shared.core.machine import TransitionConflict
from tributary_shared.core.ports import Ports
from tributary_shared.core.provenance import recorded_inputs, result_refusal, tenant_refusal
from tributary_shared.core.records import StepRecord, WorkflowRecord
from tributary_shared.core.status import STEPS_MAY_RUN, StepStatus, WorkflowStatus
from tributary_shared.runtime import failpoints
from tributary_shared.runtime.budget import budget_limits
from tributary_shared.runtime.control import WorkflowControl, deadline_at
from tributary_shared.runtime.inputs import InputRefused, WorkflowInputs
from tributary_shared.runtime.kafka.publisher import ACK_TIMEOUT_S
from tributary_shared.runtime.llm.metered import MeteredLLM, WorkflowLLMs
from tributary_shared.runtime.outbox import send_unsent
from tributary_shared.runtime.settings import BudgetSettings, WorkflowDefaults

log = logging.getLogger(__name__)


class Planner:
    def __init__(
        self,
        ports: Ports,
        *,
        llms: WorkflowLLMs,
        settings: PlannerSettings,
        budgets: BudgetSettings,
        defaults: WorkflowDefaults,
        sweep_item_timeout_s: float = ACK_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._control = WorkflowControl.over(ports)
        self._inputs = WorkflowInputs(store=ports.store, publisher=ports.publisher, clock=clock)
        self._defaults = defaults
        self._sweepers: list[asyncio.Task[None]] = []
        self._store = ports.store
        self._budgets = ports.budgets
        self._publisher = ports.publisher
        self._llms = llms
        self._settings = settings
        self._budget_settings = budgets
        self._sweep_item_timeout_s = sweep_item_timeout_s
        self._clock = clock
        # Names this replica in lease tokens, for the logs of whoever finds one.
        self._instance = f"{socket.gethostname()}:{os.getpid()}"

    async def start(self) -> None:
        # Two loops, so that a Kafka outage, which holds up re-sending, never
        # holds up failing overdue workflows (a write to Redis alone).
        self._sweepers = [
            asyncio.create_task(self._every_interval(self.expire_overdue), name="deadlines"),
            asyncio.create_task(self._every_interval(self.send_unsent), name="outbox"),
        ]

    async def close(self) -> None:
        for sweeper in self._sweepers:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        await self._llms.close()

    async def _every_interval(self, one_pass: Callable[[float], Awaitable[None]]) -> None:
        while True:
            try:
                await one_pass(time.time())
            except Exception:
                log.exception("sweep failed; retrying")
            await asyncio.sleep(self._settings.deadline_sweep_interval_s)

    async def sweep(self, now: float) -> None:
        """One pass of both sweeps: overdue workflows fail; unsent events go out."""
        await self.expire_overdue(now)
        await self.send_unsent(now)

    async def expire_overdue(self, now: float) -> None:
        """Fail the workflows past their deadline, and settle the input requests past
        their expiry, all at once: each item's write is what matters, and its publish
        may wait for Kafka (then the outbox sends it). Each is one atomic transition,
        so of several planner replicas one settles it."""
        await asyncio.gather(
            *(
                self._bounded(functools.partial(self._expire, workflow_id), what="expiring")
                for workflow_id in await self._store.overdue(now)
            ),
            *(
                self._bounded(
                    functools.partial(self._expire_input, workflow_id, request_id, now),
                    what="expiring an input request",
                )
                for workflow_id, request_id in await self._store.due_inputs(now)
            ),
        )

    async def send_unsent(self, now: float) -> None:
        """Publish what was written but not known sent, workflow by workflow. The pass
        stops at the first workflow that cannot be sent (Kafka away, most likely)
        rather than wait that out for every other one; the next pass goes on."""
        unsent = await self._store.unsent(now - self._settings.unsent_grace_s)
        by_workflow = operator.attrgetter("workflow_id")
        for _, notes in itertools.groupby(sorted(unsent, key=by_workflow), key=by_workflow):
            sending = functools.partial(send_unsent, self._store, self._publisher, list(notes))
            if not await self._bounded(sending, what="sending unsent events"):
                return

    async def _bounded(self, work: Callable[[], Awaitable[None]], *, what: str) -> bool:
        """One item of a sweep, bounded in time; False when it could not finish now
        (Kafka away: publishing waits for it), and the next pass tries again."""
        try:
            async with asyncio.timeout(self._sweep_item_timeout_s):
                await work()
        except Exception:
            log.warning("%s did not finish; the next sweep tries again", what, exc_info=True)
            return False
        return True

    async def _expire_input(self, workflow_id: str, request_id: str, now: float) -> None:
        await self._inputs.expire(workflow_id, request_id, now=now)

    async def _expire(self, workflow_id: str) -> None:
        record = await self._store.get_workflow(workflow_id)
        if record is None:
            await self._store.forget_deadline(workflow_id)
            return
        deadline_s = record.options.deadline_s or self._defaults.default_deadline_s
        await self._control.expire(workflow_id, tenant_id=record.tenant_id, deadline_s=deadline_s)

    async def handle(self, event: AnyEvent) -> None:
        if isinstance(event, WorkflowRequested):
            await self._plan(await self._as_recorded(event))
        elif isinstance(event, WorkflowCancelRequested):
            await self._cancel(event)
        elif isinstance(event, InputSubmitted):
            await self._answer(event)
        elif isinstance(event, StepCompleted | StepFailed):
            await self._advance(event)

    async def _as_recorded(self, request: WorkflowRequested) -> WorkflowRequested:
        """The request as the store holds it: a workflow it already holds is planned
        from its stored task and options, and only for its own tenant.

        A request the store does not hold yet (an integration's, produced straight
        onto the ingress topic) is recorded from the message by ``_plan``.
        """
        record = await self._store.get_workflow(request.workflow_id)
        if record is None:
            return request
        refused = tenant_refusal(request, record)
        if refused is not None:
            raise refused
        return request.model_copy(update={"task": record.task, "options": record.options})

    async def _cancel(self, request: WorkflowCancelRequested) -> None:
        record = await self._store.get_workflow(request.workflow_id)
        if record is None:
            return  # nothing to cancel
        refused = tenant_refusal(request, record)
        if refused is not None:
            raise refused
        await self._control.cancel(
            request.workflow_id,
            tenant_id=record.tenant_id,
            reason=request.reason,
            causation_id=request.event_id,
        )

    async def _answer(self, submitted: InputSubmitted) -> None:
        record = await self._store.get_workflow(submitted.workflow_id)
        if record is not None:
            refused = tenant_refusal(submitted, record)
            if refused is not None:
                raise refused
        try:
            await self._inputs.answer(
                submitted.workflow_id,
                request_id=submitted.request_id,
                answer=submitted.answer,
                source="kafka",
                causation_id=submitted.event_id,
            )
        except InputRefused as refusal:
            # Delivering it again would be refused again: dead-letter it, with why.
            raise EventRefused(
                f"input.submitted {submitted.event_id} refused: {refusal.message}",
                code=refusal.refusal.value,
            ) from None
        except TransitionConflict as conflict:
            raise EventRefused(
                f"input.submitted {submitted.event_id} refused: {conflict}", code="input_refused"
            ) from None

    async def _advance(self, finished: StepCompleted | StepFailed) -> None:
        """Release the steps whose inputs are now complete; skip those that can never run.

        What an earlier delivery of the same outcome released or skipped is sent
        again: that delivery may have died between the write and the publish.
        """
        record = await self._store.get_workflow(finished.workflow_id)
        if record is None:
            return
        refused = result_refusal(finished, record)
        if refused is not None:
            raise refused
        # A recorded skip belongs on Kafka even once the workflow has ended.
        skips = [
            step.outcome
            for step in skipped_before(record.steps, finished.step_id)
            if isinstance(step.outcome, StepFailed)
        ]
        if skips:
            await self._publisher.publish(skips)
        if record.status not in STEPS_MAY_RUN:
            return
        for step in releasable(record.steps):
            dispatched = self._dispatch(record, step, cause=finished)
            try:
                await self._store.apply(machine.release_step(dispatched))
            except TransitionConflict:
                continue  # released by an earlier delivery
            failpoints.hit("planner.after_release")
            await self._publisher.publish([dispatched])
        for step in doomed(record.steps):
            skipped = StepFailed(
                event_id=derived_event_id(record.workflow_id, "skip", step.step_id),
                workflow_id=record.workflow_id,
                tenant_id=record.tenant_id,
                causation_id=finished.event_id,
                step_id=step.step_id,
                attempt=0,
                error=ErrorInfo(
                    code=DEPENDENCY_FAILED,
                    message="a step this one depends on failed",
                    error_class="logic",
                ),
            )
            try:
                await self._store.apply(machine.skip_step(skipped))
            except TransitionConflict:
                continue
            await self._publisher.publish([skipped])
        resend = [
            self._dispatch(record, step, cause=finished)
            for step in released_before(record.steps, finished.step_id)
        ]
        if resend:
            await self._publisher.publish(resend)

    @staticmethod
    def _dispatch(
        record: WorkflowRecord, step: StepRecord, *, cause: StepCompleted | StepFailed
    ) -> StepDispatched:
        """A dependent step's dispatch, with its inputs' results (same id every time)."""
        return step_dispatch(
            record,
            step.as_planned(),
            causation_id=cause.event_id,
            inputs=recorded_inputs(record, step),
        )

    async def _plan(self, request: WorkflowRequested) -> None:
        record = await self._store.get_workflow(request.workflow_id)
        if record is None:
            # Integrations may produce requests straight onto the ingress topic.
            with contextlib.suppress(TransitionConflict):
                await self._store.create_workflow(
                    request, deadline_at=deadline_at(request, self._defaults)
                )
        # Opened before planning starts (idempotent): a workflow never plans or
        # runs without a budget, and a budget never opened admits no call.
        limits = budget_limits(request.options, self._budget_settings)
        await self._budgets.open(request.workflow_id, limits)
        owner = await self._claim_planning(request)
        if owner is None:
            return
        try:
            await self._plan_claimed(request, owner)
        except asyncio.CancelledError:
            this_task = asyncio.current_task()
            if this_task is not None and this_task.cancelling():
                # A shutdown or the handler's timeout: let go so that the request's
                # redelivery, here or elsewhere, plans at once.
                await self._release_planning(request.workflow_id, owner)
            raise
        except Exception:
            # The delivery fails and is retried (an outage, a bug): let go of the
            # planning so that the retry takes it over at once, not after the lease.
            await self._release_planning(request.workflow_id, owner)
            raise

    async def _claim_planning(self, request: WorkflowRequested) -> str | None:
        """Take the workflow's planning lease (its token), or None when there is nothing
        to plan.

        A workflow that a live planner is planning (another replica, or this one
        before a rebalance) is not planned again: this delivery waits until that
        planner records the plan or its lease lapses. A workflow planned (or
        failed in planning) already has its events sent again instead.
        """
        lease_s = self._settings.planning_lease_s
        waiting = False
        while True:
            record = await self._store.get_workflow(request.workflow_id)
            if record is None:
                return None  # expired and removed: nothing left to plan
            now = self._clock()
            if record.status is WorkflowStatus.PLANNING and record.planning_leased_at(now):
                if not waiting:
                    waiting = True
                    log.info("another planner is planning this workflow; waiting for its plan")
                await asyncio.sleep(min(record.planning_lease_until - now, lease_s / 3) + 0.01)
                continue
            if record.status not in (WorkflowStatus.PENDING, WorkflowStatus.PLANNING):
                await self._send_planned_again(request, record)
                return None
            owner = f"{self._instance}/{uuid.uuid4().hex}"
            start = machine.start_planning(
                request.workflow_id, owner=owner, lease_until=now + lease_s, now=now
            )
            try:
                await self._store.apply(start)
            except TransitionConflict:
                continue  # taken or moved on meanwhile: look again
            return owner

    async def _send_planned_again(self, request: WorkflowRequested, record: WorkflowRecord) -> None:
        """What planning this request recorded before a crash, sent again (same ids)."""
        if record.status in STEPS_MAY_RUN and not any(
            r.kind == "plan_approval" and r.state == "open" for r in record.input_requests
        ):
            # Planned before a crash; the step events may not have left.
            await self._publisher.publish(self._planned_events(request, record))
        elif record.final_event is not None:
            final = record.final_event
            if final.causation_id == request.event_id:  # planning failed before a crash
                await self._publisher.publish([final])

    async def _plan_claimed(self, request: WorkflowRequested, owner: str) -> None:
        """Plan under the lease ``owner`` holds; record the plan, or fail, only while held."""
        drafting = asyncio.create_task(self._draft(request), name="planning")
        keeper = asyncio.create_task(
            self._keep_planning_lease(request.workflow_id, owner, drafting),
            name="planning-lease-keeper",
        )
        try:
            draft, usage = await drafting
        except asyncio.CancelledError:
            this_task = asyncio.current_task()
            if this_task is not None and this_task.cancelling():
                raise
            log.info("planning stopped: the planning lease was lost or the workflow ended")
            return
        except DeadlineExceeded:
            # The model was away until the deadline: the workflow fails as the
            # deadline sweep fails it, whichever comes first.
            log.warning("planning ran out of time", extra={"error_code": "deadline_exceeded"})
            await self._expire(request.workflow_id)
            return
        except TributaryError as error:
            log.warning("planning failed: %s", error.code, extra={"error_code": error.code})
            await self._control.fail(
                request.workflow_id,
                tenant_id=request.tenant_id,
                error=error.to_info(),
                causation_id=request.event_id,
                planner=owner,
            )
            return
        finally:
            keeper.cancel()

        steps = planned_steps(draft)
        plan = PlanCreated(
            event_id=derived_event_id(request.event_id, "plan"),
            workflow_id=request.workflow_id,
            tenant_id=request.tenant_id,
            causation_id=request.event_id,
            steps=steps,
        )
        dispatches = [
            step_dispatch(request, step, causation_id=plan.event_id)
            for step in steps
            if not step.depends_on
        ]
        recording = machine.record_plan(plan, dispatches, owner=owner, usage=usage)
        if request.options.require_plan_approval:
            # Nothing is dispatched until a person approves (runtime.inputs dispatches then).
            recording = self._plan_for_approval(request, plan, owner=owner, usage=usage)
        try:
            await self._store.apply(recording)
        except TransitionConflict:
            log.info("plan refused: the workflow moved on or the planning lease was lost")
            return
        log.info("planned %d steps", len(steps))
        await self._publisher.publish(list(recording.events))

    def _plan_for_approval(
        self, request: WorkflowRequested, plan: PlanCreated, *, owner: str, usage: TokenUsage
    ) -> machine.Transition:
        options = request.options
        timeout_s = options.input_timeout_s or self._defaults.input_timeout_s
        policy = options.on_input_timeout or self._defaults.on_input_timeout
        now = utc_now()
        request_id = "in_" + derived_event_id(request.workflow_id, "plan_approval")
        titles = "; ".join(f"{step.index + 1}. {step.title}" for step in plan.steps)
        requested = InputRequested(
            event_id=derived_event_id(request.workflow_id, "asked", request_id),
            workflow_id=request.workflow_id,
            tenant_id=request.tenant_id,
            causation_id=plan.event_id,
            occurred_at=now,
            request_id=request_id,
            kind="plan_approval",
            question=f"Approve this plan? {titles}",
            choices=APPROVAL_CHOICES,
            requested_at=now,
            expires_at=now + timedelta(seconds=timeout_s) if timeout_s else None,
        )
        return machine.record_plan_for_approval(
            plan,
            requested,
            owner=owner,
            usage=usage,
            timeout_answer=None if policy == ON_INPUT_TIMEOUT_FAIL else policy,
        )

    async def _draft(self, request: WorkflowRequested) -> tuple[PlanDraft, TokenUsage]:
        max_steps = min(
            request.options.max_steps or self._settings.max_steps, self._settings.max_steps
        )
        # The deadline the workflow was created with (here, or by the gateway): the
        # planning calls wait out a failing model no longer.
        _, deadline = await self._store.status(request.workflow_id)
        llm = self._llms.for_workflow(
            request.workflow_id,
            request.tenant_id,
            deadline_at=deadline or deadline_at(request, self._defaults),
        )
        return await self._draft_plan(llm, request.task, max_steps=max_steps)

    async def _keep_planning_lease(
        self, workflow_id: str, owner: str, drafting: asyncio.Task[tuple[PlanDraft, TokenUsage]]
    ) -> None:
        """Renew the planning lease while the planning LLM calls run (they may ride out
        an outage for long); stop them once the lease is lost."""
        lease_s = self._settings.planning_lease_s
        while True:
            await asyncio.sleep(lease_s / 3)
            renewal = machine.renew_planning_lease(
                workflow_id, owner=owner, lease_until=self._clock() + lease_s
            )
            try:
                await self._store.apply(renewal)
            except TransitionConflict:
                # Taken over after a lapse, or the workflow ended: planning must not
                # go on, and its plan would be refused anyway.
                drafting.cancel()
                return
            except Exception:
                log.warning("renewing the planning lease failed; retrying")

    async def _release_planning(self, workflow_id: str, owner: str) -> None:
        release = machine.release_planning_lease(workflow_id, owner=owner)
        try:
            await asyncio.wait_for(self._store.apply(release), timeout=2.0)
        except Exception:  # best effort: otherwise the lease simply lapses
            log.info("a planning lease was not given up (lost, planning over or Redis away)")

    async def _draft_plan(
        self, llm: MeteredLLM, task: str, *, max_steps: int
    ) -> tuple[PlanDraft, TokenUsage]:
        """A plan from the model, re-planned with corrections as the error table allows."""
        messages = planning_messages(task, max_steps=max_steps)
        usage = TokenUsage()
        replans = 0
        while True:
            draft, used = await llm.structured(
                role="planner", messages=messages, output=PlanDraft, schema_name=PLAN_SCHEMA_NAME
            )
            usage = usage + used
            problems = plan_problems(draft, max_steps=max_steps)
            if not problems:
                return draft, usage
            error = ModelError("the plan was invalid: " + "; ".join(problems), code="plan_invalid")
            if replans >= recovery_for(error).reprompts:
                raise error
            replans += 1
            messages = [*messages, {"role": "assistant", "content": draft.model_dump_json()}]
            messages += correction_messages(problems)

    def _planned_events(
        self, request: WorkflowRequested, record: WorkflowRecord
    ) -> list[PlanCreated | StepDispatched]:
        """The plan and its root dispatches again (same ids), for a plan recorded before a
        crash: the steps not yet started need their dispatch, and egress consumers the plan.

        Released dependents are re-sent by ``_advance`` when the results they
        build on are redelivered.
        """
        plan = PlanCreated(
            event_id=derived_event_id(request.event_id, "plan"),
            workflow_id=request.workflow_id,
            tenant_id=request.tenant_id,
            causation_id=request.event_id,
            steps=tuple(step.as_planned() for step in record.steps),
        )
        dispatches = [
            step_dispatch(request, step.as_planned(), causation_id=plan.event_id)
            for step in record.steps
            if step.status is StepStatus.PENDING and not step.depends_on
        ]
        return [plan, *dispatches]
