"""Every workflow and step transition, decided without I/O.

    workflow   (absent) --create--> pending --start_planning--> planning
               planning --start_planning--> planning (taken over: the planner's lease lapsed)
               planning --record_plan--> running --start_synthesis--> synthesizing
               planning --record_plan_for_approval--> awaiting_input (a plan_approval
                                request opens; no step is dispatched yet)
               awaiting_input --approve_plan--> running (the root steps are dispatched)
               awaiting_input --reject_plan--> failed
               planning --fail_planning--> failed (the planner gave up: no valid plan)
               synthesizing --complete--> completed
               running | awaiting_input --pause_step--> awaiting_input (an input request opens)
               awaiting_input --answer_input | expire_input--> running when no other request
                                is open, else awaiting_input
               any active status --fail--> failed, --cancel--> cancelled

    step       waiting --release_step--> pending --start_step--> running
               running --finish_step--> completed | failed
               waiting --skip_step--> failed   (a step it depends on failed)
               running --start_step--> running (resumed after a crash mid-step)
               running --pause_step--> awaiting_input (its agent asked a human; the lease
                                is given up and its conversation kept as a checkpoint)
               awaiting_input --answer_input--> pending (dispatched again: it resumes
                                from the checkpoint with the answer)
               awaiting_input --expire_input--> pending (the default answer) | failed
               awaiting_input --answer_input--> failed (a step_approval answered "reject")

Steps are released, started and finished while the workflow is ``running`` or
``awaiting_input``: a question of one step holds up only that step.

``RULES`` is the whole table: for each move, the workflow statuses it may
start from, the status it leads to and the step statuses it may start from.

Two kinds of work run long and must run once at a time: planning a workflow
and running a step. Each runs under a lease, an owner token with an expiry
that the owner renews while it works: the workflow's planning lease, and each
step's own. A move on a step concerns the step's lease; a move on the
workflow alone concerns the planning lease. A rule may require that lease to
have lapsed (``needs_expired_lease``: nobody is working on it) or the
transition to come from its holder (``fenced``: a planner or runner that lost
its lease writes nothing).
A builder (``start_step``, ``finish_step``...) turns the event a handler wants
to record into a ``Transition``: the move, what changes, and the events to
append to the workflow's log. ``apply`` checks a transition against a record
and returns the new record, or raises ``TransitionConflict`` and changes
nothing.

The in-memory store runs ``apply`` itself; the Redis store compiles the same
transition into one atomic Lua program that checks the same ``RULES``. The
store contract tests hold both to the same outcomes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

from tributary_shared.core.events import (
    AnyEvent,
    InputAnswered,
    InputRequested,
    PlanCreated,
    PlannedStep,
    StepCompleted,
    StepDispatched,
    StepFailed,
    StepStarted,
    SynthesisStarted,
    TokenUsage,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowRequested,
    utc_now,
)
from tributary_shared.core.records import (
    FinalEvent,
    InputRequest,
    StepCheckpoint,
    StepRecord,
    WorkflowRecord,
)
from tributary_shared.core.status import (
    ACTIVE_WORKFLOW_STATUSES,
    STEPS_MAY_RUN,
    StepStatus,
    WorkflowStatus,
)

__all__ = [
    "RULES",
    "Move",
    "Rule",
    "StepChange",
    "Transition",
    "TransitionConflict",
    "answer_input",
    "apply",
    "approve_plan",
    "cancel",
    "complete",
    "create",
    "expire_input",
    "fail",
    "fail_planning",
    "finish_step",
    "pause_step",
    "record_plan",
    "record_plan_for_approval",
    "refusal",
    "reject_plan",
    "reject_step",
    "release_lease",
    "release_planning_lease",
    "release_step",
    "renew_lease",
    "renew_planning_lease",
    "skip_step",
    "start_planning",
    "start_step",
    "start_synthesis",
]


class TransitionConflict(Exception):
    """The state was not what the transition expects; nothing was written."""

    def __init__(self, subject: str, actual: str) -> None:
        super().__init__(f"{subject} is {actual or '<absent>'!r}")
        self.subject = subject
        self.actual = actual


class Move(StrEnum):
    """The moves of the machine."""

    CREATE = "create"
    START_PLANNING = "start_planning"
    RENEW_PLANNING_LEASE = "renew_planning_lease"
    RELEASE_PLANNING_LEASE = "release_planning_lease"
    RECORD_PLAN = "record_plan"
    FAIL_PLANNING = "fail_planning"
    RELEASE_STEP = "release_step"
    SKIP_STEP = "skip_step"
    START_STEP = "start_step"
    FINISH_STEP = "finish_step"
    RECORD_PLAN_FOR_APPROVAL = "record_plan_for_approval"
    APPROVE_PLAN = "approve_plan"
    REJECT_PLAN = "reject_plan"
    PAUSE_STEP = "pause_step"
    ANSWER_INPUT = "answer_input"
    EXPIRE_INPUT = "expire_input"
    RENEW_LEASE = "renew_lease"
    RELEASE_LEASE = "release_lease"
    START_SYNTHESIS = "start_synthesis"
    COMPLETE = "complete"
    FAIL = "fail"
    CANCEL = "cancel"


@dataclass(frozen=True, slots=True)
class Rule:
    """Where a move may start and where it leads."""

    workflow_from: frozenset[WorkflowStatus]
    """Statuses the workflow may be in; empty means it must not exist yet."""
    workflow_to: WorkflowStatus | None = None
    """The workflow's new status; None leaves it as it is."""
    step_from: frozenset[StepStatus] = frozenset()
    """Statuses the step may be in; empty means the move concerns no step."""
    step_to: frozenset[StepStatus] = frozenset()
    needs_all_steps_finished: bool = False
    needs_expired_lease: bool = False
    """The lease, if any, must have expired at the transition's ``now``: the step's for a
    move on a step, else the workflow's planning lease."""
    fenced: bool = False
    """Only the lease's holder (the transition's ``fence``) may make it: the step's lease
    for a move on a step, else the workflow's planning lease."""
    ends: bool = False
    """The workflow reaches a final status: its keys start to expire."""
    opens_input: bool = False
    """Adds the transition's input request, open (its id must be new)."""
    settles_input: bool = False
    """Settles the transition's input request, which must be open; the workflow is
    ``running`` again when no other request is open."""


_W = WorkflowStatus
_S = StepStatus

RULES: Mapping[Move, Rule] = MappingProxyType(
    {
        Move.CREATE: Rule(frozenset(), _W.PENDING),
        # planning -> planning: a redelivered request takes planning over once the
        # previous planner's lease lapsed (it died, or lost Redis for that long).
        Move.START_PLANNING: Rule(
            frozenset({_W.PENDING, _W.PLANNING}), _W.PLANNING, needs_expired_lease=True
        ),
        Move.RENEW_PLANNING_LEASE: Rule(frozenset({_W.PLANNING}), fenced=True),
        Move.RELEASE_PLANNING_LEASE: Rule(frozenset({_W.PLANNING}), fenced=True),
        Move.RECORD_PLAN: Rule(frozenset({_W.PLANNING}), _W.RUNNING, fenced=True),
        Move.FAIL_PLANNING: Rule(frozenset({_W.PLANNING}), _W.FAILED, fenced=True, ends=True),
        Move.RELEASE_STEP: Rule(
            STEPS_MAY_RUN,
            step_from=frozenset({_S.WAITING}),
            step_to=frozenset({_S.PENDING}),
        ),
        Move.SKIP_STEP: Rule(
            STEPS_MAY_RUN,
            step_from=frozenset({_S.WAITING}),
            step_to=frozenset({_S.FAILED}),
        ),
        # running -> running: the step is taken over after its runner's lease expired.
        Move.START_STEP: Rule(
            STEPS_MAY_RUN,
            step_from=frozenset({_S.PENDING, _S.RUNNING}),
            step_to=frozenset({_S.RUNNING}),
            needs_expired_lease=True,
        ),
        Move.RENEW_LEASE: Rule(
            STEPS_MAY_RUN,
            step_from=frozenset({_S.RUNNING}),
            step_to=frozenset({_S.RUNNING}),
            fenced=True,
        ),
        # Any active status: a runner stopped by a cancel or a shutdown lets go at once.
        Move.RELEASE_LEASE: Rule(
            ACTIVE_WORKFLOW_STATUSES,
            step_from=frozenset({_S.RUNNING}),
            step_to=frozenset({_S.RUNNING}),
            fenced=True,
        ),
        Move.FINISH_STEP: Rule(
            STEPS_MAY_RUN,
            step_from=frozenset({_S.RUNNING}),
            step_to=frozenset({_S.COMPLETED, _S.FAILED}),
            fenced=True,
        ),
        # The runner gives its lease up with the pause: the step holds nobody while it waits.
        Move.PAUSE_STEP: Rule(
            STEPS_MAY_RUN,
            _W.AWAITING_INPUT,
            step_from=frozenset({_S.RUNNING}),
            step_to=frozenset({_S.AWAITING_INPUT}),
            fenced=True,
            opens_input=True,
        ),
        Move.ANSWER_INPUT: Rule(
            frozenset({_W.AWAITING_INPUT}),
            step_from=frozenset({_S.AWAITING_INPUT}),
            step_to=frozenset({_S.PENDING, _S.FAILED}),
            settles_input=True,
        ),
        Move.RECORD_PLAN_FOR_APPROVAL: Rule(
            frozenset({_W.PLANNING}), _W.AWAITING_INPUT, fenced=True, opens_input=True
        ),
        Move.APPROVE_PLAN: Rule(frozenset({_W.AWAITING_INPUT}), settles_input=True),
        Move.REJECT_PLAN: Rule(
            frozenset({_W.AWAITING_INPUT}), _W.FAILED, ends=True, settles_input=True
        ),
        Move.EXPIRE_INPUT: Rule(
            frozenset({_W.AWAITING_INPUT}),
            step_from=frozenset({_S.AWAITING_INPUT}),
            step_to=frozenset({_S.PENDING, _S.FAILED}),
            settles_input=True,
        ),
        Move.START_SYNTHESIS: Rule(
            frozenset({_W.RUNNING}), _W.SYNTHESIZING, needs_all_steps_finished=True
        ),
        Move.COMPLETE: Rule(frozenset({_W.SYNTHESIZING}), _W.COMPLETED, ends=True),
        Move.FAIL: Rule(ACTIVE_WORKFLOW_STATUSES, _W.FAILED, ends=True),
        Move.CANCEL: Rule(ACTIVE_WORKFLOW_STATUSES, _W.CANCELLED, ends=True),
    }
)


@dataclass(frozen=True, slots=True)
class StepChange:
    step_id: str
    status: StepStatus
    attempt: int | None = None
    """The run this change belongs to; None leaves the step's attempt as it is."""
    outcome: StepCompleted | StepFailed | None = None
    """Set when the step finishes: its result, error and usage come from it."""
    owner: str | None = None
    """The lease's new holder; "" gives the lease up; None leaves it as it is."""
    lease_until: float | None = None
    checkpoint: StepCheckpoint | None = None
    """Where a pausing step's agent stopped; None leaves the step's checkpoint as it is."""


@dataclass(frozen=True, slots=True)
class Transition:
    """One decided change of a workflow, ready to be checked and written atomically."""

    move: Move
    workflow_id: str
    events: tuple[AnyEvent, ...] = ()
    """Appended to the workflow's log, in order, when the transition is written."""
    step: StepChange | None = None
    request: WorkflowRequested | None = None
    deadline_at: float | None = None
    plan: tuple[PlannedStep, ...] | None = None
    usage: TokenUsage = field(default_factory=TokenUsage)
    final: FinalEvent | None = None
    planning_owner: str | None = None
    """The planning lease's new holder; "" gives it up; None leaves it as it is."""
    planning_lease_until: float | None = None
    fence: str | None = None
    """For fenced moves: the lease token the lease's holder must match."""
    now: float | None = None
    """For lease checks: the time (epoch seconds) the transition is decided at."""
    input_request: InputRequest | None = None
    """The input request a move opens (new, open) or settles (as it is after the move)."""
    at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        rule = RULES[self.move]
        if rule.fenced and not self.fence:
            raise ValueError(f"{self.move} is fenced: it needs the lease token")
        if rule.needs_expired_lease and self.now is None:
            raise ValueError(f"{self.move} checks the lease: it needs the time")
        if bool(rule.step_from) != (self.step is not None):
            raise ValueError(f"{self.move} {'needs' if rule.step_from else 'takes no'} step")
        if self.step is not None and self.step.status not in rule.step_to:
            raise ValueError(f"{self.move} cannot leave a step {self.step.status}")
        if (rule.opens_input or rule.settles_input) != (self.input_request is not None):
            raise ValueError(f"{self.move} concerns an input request exactly when its rule does")

    @property
    def rule(self) -> Rule:
        return RULES[self.move]


# -- builders: the event a handler wants recorded -> the transition ---------------


def create(request: WorkflowRequested, *, deadline_at: float) -> Transition:
    return Transition(
        Move.CREATE,
        request.workflow_id,
        events=(request,),
        request=request,
        deadline_at=deadline_at,
        at=request.occurred_at,
    )


def start_planning(workflow_id: str, *, owner: str, lease_until: float, now: float) -> Transition:
    """pending -> planning, or planning -> planning once the previous planner's lease lapsed."""
    return Transition(
        Move.START_PLANNING,
        workflow_id,
        planning_owner=owner,
        planning_lease_until=lease_until,
        now=now,
    )


def renew_planning_lease(workflow_id: str, *, owner: str, lease_until: float) -> Transition:
    """The planner keeps planning; refused once it lost the lease or the workflow moved on."""
    return Transition(
        Move.RENEW_PLANNING_LEASE,
        workflow_id,
        planning_lease_until=lease_until,
        fence=owner,
    )


def release_planning_lease(workflow_id: str, *, owner: str) -> Transition:
    """The planner stops without a plan; the next delivery may plan at once."""
    return Transition(
        Move.RELEASE_PLANNING_LEASE,
        workflow_id,
        planning_owner="",
        planning_lease_until=0.0,
        fence=owner,
    )


def record_plan(
    plan: PlanCreated,
    dispatches: Sequence[StepDispatched],
    *,
    owner: str,
    usage: TokenUsage | None = None,
) -> Transition:
    """The plan and the dispatch of its root steps, logged together, by the planning
    lease's holder only."""
    return Transition(
        Move.RECORD_PLAN,
        plan.workflow_id,
        events=(plan, *dispatches),
        plan=plan.steps,
        usage=usage or TokenUsage(),
        planning_owner="",
        planning_lease_until=0.0,
        fence=owner,
    )


def fail_planning(
    failed: WorkflowFailed, *, owner: str, usage: TokenUsage | None = None
) -> Transition:
    """planning -> failed (no valid plan), by the planning lease's holder only."""
    return Transition(
        Move.FAIL_PLANNING,
        failed.workflow_id,
        events=(failed,),
        final=failed,
        usage=usage or TokenUsage(),
        planning_owner="",
        planning_lease_until=0.0,
        fence=owner,
    )


def release_step(dispatched: StepDispatched) -> Transition:
    """A waiting step's inputs are complete; refused if another replica released it."""
    change = StepChange(dispatched.step.step_id, StepStatus.PENDING)
    return Transition(Move.RELEASE_STEP, dispatched.workflow_id, events=(dispatched,), step=change)


def skip_step(failed: StepFailed) -> Transition:
    """A waiting step can never run: a step it depends on failed."""
    change = StepChange(failed.step_id, StepStatus.FAILED, failed.attempt, outcome=failed)
    return Transition(Move.SKIP_STEP, failed.workflow_id, events=(failed,), step=change)


def start_step(started: StepStarted, *, owner: str, lease_until: float, now: float) -> Transition:
    """pending -> running, or running -> running once the previous runner's lease expired."""
    change = StepChange(
        started.step_id, StepStatus.RUNNING, started.attempt, owner=owner, lease_until=lease_until
    )
    return Transition(Move.START_STEP, started.workflow_id, events=(started,), step=change, now=now)


def renew_lease(workflow_id: str, step_id: str, *, owner: str, lease_until: float) -> Transition:
    """The owner keeps the step; refused once it lost the lease or the workflow moved on."""
    change = StepChange(step_id, StepStatus.RUNNING, lease_until=lease_until)
    return Transition(Move.RENEW_LEASE, workflow_id, step=change, fence=owner)


def release_lease(workflow_id: str, step_id: str, *, owner: str) -> Transition:
    """The owner stops without an outcome; the next delivery may take the step at once."""
    change = StepChange(step_id, StepStatus.RUNNING, owner="", lease_until=0.0)
    return Transition(Move.RELEASE_LEASE, workflow_id, step=change, fence=owner)


def finish_step(outcome: StepCompleted | StepFailed, *, owner: str) -> Transition:
    """running -> completed | failed, once, by the lease's owner only."""
    status = StepStatus.COMPLETED if isinstance(outcome, StepCompleted) else StepStatus.FAILED
    change = StepChange(
        outcome.step_id, status, outcome.attempt, outcome=outcome, owner="", lease_until=0.0
    )
    return Transition(
        Move.FINISH_STEP,
        outcome.workflow_id,
        events=(outcome,),
        step=change,
        usage=outcome.usage,
        fence=owner,
    )


def record_plan_for_approval(
    plan: PlanCreated,
    requested: InputRequested,
    *,
    owner: str,
    usage: TokenUsage | None = None,
    timeout_answer: str | None = None,
) -> Transition:
    """The plan, waiting for a person's approval before any step is dispatched; by the
    planning lease's holder only."""
    return Transition(
        Move.RECORD_PLAN_FOR_APPROVAL,
        plan.workflow_id,
        events=(plan, requested),
        plan=plan.steps,
        usage=usage or TokenUsage(),
        planning_owner="",
        planning_lease_until=0.0,
        fence=owner,
        input_request=InputRequest.of(requested, timeout_answer=timeout_answer),
    )


def approve_plan(
    request: InputRequest,
    answered: InputAnswered,
    dispatches: Sequence[StepDispatched],
    *,
    expired: bool = False,
) -> Transition:
    """The plan approved: the root steps are dispatched with the answer."""
    return Transition(
        Move.APPROVE_PLAN,
        answered.workflow_id,
        events=(answered, *dispatches),
        input_request=_settled(request, answered, expired=expired),
        at=answered.occurred_at,
    )


def reject_plan(
    request: InputRequest,
    answered: InputAnswered | None,
    failed: WorkflowFailed,
) -> Transition:
    """The plan rejected (or its approval expired without a default): the workflow fails."""
    settled = (
        _settled(request, answered)
        if answered is not None
        else _lapsed(request, at=failed.occurred_at)
    )
    return Transition(
        Move.REJECT_PLAN,
        failed.workflow_id,
        events=(*((answered,) if answered is not None else ()), failed),
        final=failed,
        input_request=settled,
        at=failed.occurred_at,
    )


def reject_step(request: InputRequest, answered: InputAnswered, failed: StepFailed) -> Transition:
    """A step's approval answered "reject": the step fails (its dependents are skipped)."""
    assert request.step_id is not None
    change = StepChange(request.step_id, StepStatus.FAILED, failed.attempt, outcome=failed)
    return Transition(
        Move.ANSWER_INPUT,
        answered.workflow_id,
        events=(answered, failed),
        step=change,
        input_request=_settled(request, answered),
        at=answered.occurred_at,
    )


def _settled(
    request: InputRequest, answered: InputAnswered, *, expired: bool = False
) -> InputRequest:
    return request.model_copy(
        update={
            "state": "expired" if expired else "answered",
            "answer": answered.answer,
            "answered_at": answered.occurred_at,
        }
    )


def _lapsed(request: InputRequest, *, at: datetime) -> InputRequest:
    """The request expired with no answer to give (none came, and it has no default)."""
    return request.model_copy(update={"state": "expired", "answered_at": at})


def pause_step(
    requested: InputRequested,
    checkpoint: StepCheckpoint,
    *,
    owner: str,
    timeout_answer: str | None,
) -> Transition:
    """running -> awaiting_input, by the lease's owner only: the request opens, the lease
    is given up and the agent's conversation is kept, in one write."""
    assert requested.step_id is not None, "a step pauses on its own question"
    change = StepChange(
        requested.step_id,
        StepStatus.AWAITING_INPUT,
        owner="",
        lease_until=0.0,
        checkpoint=checkpoint,
    )
    return Transition(
        Move.PAUSE_STEP,
        requested.workflow_id,
        events=(requested,),
        step=change,
        fence=owner,
        input_request=InputRequest.of(requested, timeout_answer=timeout_answer),
        at=requested.occurred_at,
    )


def answer_input(
    request: InputRequest, answered: InputAnswered, redispatch: StepDispatched
) -> Transition:
    """An open request gets its answer; its step is dispatched again, to resume."""
    return _resume_step(Move.ANSWER_INPUT, request, answered, redispatch, expired=False)


def expire_input(
    request: InputRequest,
    outcome: tuple[InputAnswered, StepDispatched] | StepFailed,
) -> Transition:
    """An open request past its expiry: its default answer resumes the step as an answer
    would, or (none) the step fails with ``input_timeout``."""
    assert request.step_id is not None
    if isinstance(outcome, StepFailed):
        change = StepChange(request.step_id, StepStatus.FAILED, outcome.attempt, outcome=outcome)
        return Transition(
            Move.EXPIRE_INPUT,
            outcome.workflow_id,
            events=(outcome,),
            step=change,
            input_request=_lapsed(request, at=outcome.occurred_at),
            at=outcome.occurred_at,
        )
    answered, redispatch = outcome
    return _resume_step(Move.EXPIRE_INPUT, request, answered, redispatch, expired=True)


def _resume_step(
    move: Move,
    request: InputRequest,
    answered: InputAnswered,
    redispatch: StepDispatched,
    *,
    expired: bool,
) -> Transition:
    """The request settled with ``answered``; its paused step pending again, redispatched."""
    assert request.step_id is not None
    assert request.step_id == redispatch.step.step_id
    return Transition(
        move,
        answered.workflow_id,
        events=(answered, redispatch),
        step=StepChange(request.step_id, StepStatus.PENDING),
        input_request=_settled(request, answered, expired=expired),
        at=answered.occurred_at,
    )


def start_synthesis(started: SynthesisStarted) -> Transition:
    return Transition(Move.START_SYNTHESIS, started.workflow_id, events=(started,))


def complete(completed: WorkflowCompleted) -> Transition:
    return Transition(
        Move.COMPLETE,
        completed.workflow_id,
        events=(completed,),
        final=completed,
        usage=completed.usage,
    )


def fail(failed: WorkflowFailed, *, usage: TokenUsage | None = None) -> Transition:
    return Transition(
        Move.FAIL, failed.workflow_id, events=(failed,), final=failed, usage=usage or TokenUsage()
    )


def cancel(cancelled: WorkflowCancelled) -> Transition:
    """Any active status -> cancelled, once; later step results are refused."""
    return Transition(Move.CANCEL, cancelled.workflow_id, events=(cancelled,), final=cancelled)


# -- checking and applying ------------------------------------------------------------


def refusal(record: WorkflowRecord | None, transition: Transition) -> TransitionConflict | None:
    """Why ``transition`` cannot be applied to ``record``, or None when it can."""
    rule = transition.rule
    if not rule.workflow_from:
        return None if record is None else TransitionConflict("workflow", record.status)
    if record is None:
        return TransitionConflict("workflow", "")
    if record.status not in rule.workflow_from:
        return TransitionConflict("workflow", record.status)
    if transition.step is not None:
        step = record.step(transition.step.step_id)
        actual = step.status if step is not None else ""
        if actual not in rule.step_from:
            return TransitionConflict(f"step {transition.step.step_id}", actual)
        assert step is not None
        if rule.fenced and step.owner != transition.fence:
            return TransitionConflict(f"lease of {step.step_id}", step.owner or "")
        if rule.needs_expired_lease and step.leased_at(transition.now or 0.0):
            return TransitionConflict(f"lease of {step.step_id}", step.owner or "")
    else:
        if rule.fenced and record.planning_owner != transition.fence:
            return TransitionConflict("planning lease", record.planning_owner or "")
        if rule.needs_expired_lease and record.planning_leased_at(transition.now or 0.0):
            return TransitionConflict("planning lease", record.planning_owner or "")
    if rule.needs_all_steps_finished and not record.all_steps_finished:
        return TransitionConflict("steps finished", str(record.steps_finished))
    if transition.input_request is not None:
        held = record.input_request(transition.input_request.request_id)
        if rule.opens_input and held is not None:
            return TransitionConflict(f"input {held.request_id}", held.state)
        if rule.settles_input and (held is None or held.state != "open"):
            return TransitionConflict(
                f"input {transition.input_request.request_id}", held.state if held else ""
            )
    return None


def apply(record: WorkflowRecord | None, transition: Transition) -> WorkflowRecord:
    """The record after ``transition``; raises ``TransitionConflict`` when it is refused."""
    conflict = refusal(record, transition)
    if conflict is not None:
        raise conflict
    if record is None:
        return _created(transition)
    rule = transition.rule
    changes: dict[str, object] = {
        "updated_at": transition.at,
        "usage": record.usage + transition.usage,
    }
    if rule.workflow_to is not None:
        changes["status"] = rule.workflow_to
    if transition.planning_owner is not None:
        changes["planning_owner"] = transition.planning_owner or None
    if transition.planning_lease_until is not None:
        changes["planning_lease_until"] = transition.planning_lease_until
    if transition.plan is not None:
        changes["steps"] = tuple(StepRecord.planned(step) for step in transition.plan)
        changes["steps_total"] = len(transition.plan)
    if transition.step is not None:
        changes["steps"] = tuple(
            _changed(step, transition.step) if step.step_id == transition.step.step_id else step
            for step in record.steps
        )
        if transition.step.outcome is not None:
            changes["steps_finished"] = record.steps_finished + 1
    if transition.final is not None:
        changes.update(_final_fields(transition.final))
    if transition.input_request is not None:
        changes.update(_input_fields(record, transition.input_request))
        if rule.workflow_to is not None:  # an end (reject_plan) is not undone
            changes["status"] = rule.workflow_to
    return record.model_copy(update=changes)


def _input_fields(record: WorkflowRecord, request: InputRequest) -> dict[str, object]:
    """The requests after one opened or settled, and the status they leave."""
    others = tuple(r for r in record.input_requests if r.request_id != request.request_id)
    requests = (
        (*others, request)
        if request.state == "open"
        else tuple(
            request if r.request_id == request.request_id else r for r in record.input_requests
        )
    )
    still_open = any(r.state == "open" for r in requests)
    return {
        "input_requests": requests,
        "status": WorkflowStatus.AWAITING_INPUT if still_open else WorkflowStatus.RUNNING,
    }


def _created(transition: Transition) -> WorkflowRecord:
    request = transition.request
    assert request is not None, "create carries its request"
    return WorkflowRecord(
        workflow_id=request.workflow_id,
        tenant_id=request.tenant_id,
        status=WorkflowStatus.PENDING,
        task=request.task,
        options=request.options,
        created_at=request.occurred_at,
        updated_at=request.occurred_at,
        deadline_at=transition.deadline_at,
    )


def _changed(step: StepRecord, change: StepChange) -> StepRecord:
    lease: dict[str, object] = {}
    if change.owner is not None:
        lease["owner"] = change.owner or None
    if change.lease_until is not None:
        lease["lease_until"] = change.lease_until
    if change.checkpoint is not None:
        lease["checkpoint"] = change.checkpoint
    outcome = change.outcome
    if outcome is None:
        attempt = step.attempt if change.attempt is None else change.attempt
        return step.model_copy(update={"status": change.status, "attempt": attempt, **lease})
    return step.model_copy(
        update={
            "status": change.status,
            "attempt": outcome.attempt,
            "iterations": outcome.iterations,
            "usage": outcome.usage,
            "models": outcome.models,
            "result": outcome.result if isinstance(outcome, StepCompleted) else None,
            "error": outcome.error if isinstance(outcome, StepFailed) else None,
            "outcome": outcome,
            **lease,
        }
    )


def _final_fields(final: FinalEvent) -> dict[str, object]:
    fields: dict[str, object] = {"final_event": final}
    if isinstance(final, WorkflowCompleted):
        fields.update(result=final.result, partial=final.partial)
    elif isinstance(final, WorkflowFailed):
        fields["error"] = final.error
    return fields
