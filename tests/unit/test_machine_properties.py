"""The state machine under any delivery order, duplicates and redeliveries.

Hypothesis throws arbitrary sequences of transitions at ``machine.apply`` —
steps started, finished twice, finished after cancel, synthesis before the
last step, second final results — and checks after every one what users rely
on: a step has at most one outcome, a workflow at most one final result, an
ended workflow never changes again, and the counters match what was recorded.
A second property runs the real handlers (the in-process harness) delivering
their events in a random order, each possibly twice.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.harness import Harness
from tests.support.scripted import ScriptedEndpoint
from tributary_shared.core import machine
from tributary_shared.core.events import (
    ErrorInfo,
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
)
from tributary_shared.core.machine import Transition, TransitionConflict
from tributary_shared.core.records import WorkflowRecord
from tributary_shared.core.status import StepStatus, WorkflowStatus

WF = "wf_prop"
ERROR = ErrorInfo(code="x", message="x", error_class="logic")
USAGE = TokenUsage(prompt_tokens=3, completion_tokens=2)


@st.composite
def plans(draw: st.DrawFn) -> tuple[PlannedStep, ...]:
    count = draw(st.integers(min_value=1, max_value=4))
    steps = []
    for index in range(count):
        earlier = [f"s{i + 1}" for i in range(index)]
        needs = draw(st.lists(st.sampled_from(earlier), unique=True)) if earlier else []
        steps.append(
            PlannedStep(
                step_id=f"s{index + 1}",
                index=index,
                title=f"t{index}",
                instruction="i",
                depends_on=tuple(needs),
            )
        )
    return tuple(steps)


NOW = 1000.0


def transition_for(kind: str, step: PlannedStep, attempt: int) -> Transition:
    """One attempted transition; many are refused, which is the point.

    ``attempt`` also picks the runner (two of them) and its lease: lapsed,
    lapsing now, or alive at ``NOW``.
    """
    sid = step.step_id
    owner = f"runner-{attempt % 2}"
    if kind == "start":
        started = StepStarted(workflow_id=WF, step_id=sid, attempt=attempt)
        lease_until = NOW + (attempt - 2) * 10
        return machine.start_step(started, owner=owner, lease_until=lease_until, now=NOW)
    if kind == "renew":
        return machine.renew_lease(WF, sid, owner=owner, lease_until=NOW + 30)
    if kind == "release":
        return machine.release_lease(WF, sid, owner=owner)
    if kind == "complete_step":
        completed = StepCompleted(
            workflow_id=WF, step_id=sid, result="r", iterations=1, attempt=attempt, usage=USAGE
        )
        return machine.finish_step(completed, owner=owner)
    if kind == "fail_step":
        failed = StepFailed(workflow_id=WF, step_id=sid, error=ERROR, attempt=attempt, usage=USAGE)
        return machine.finish_step(failed, owner=owner)
    if kind == "release_step":
        return machine.release_step(StepDispatched(workflow_id=WF, step=step, task="t"))
    if kind == "skip":
        return machine.skip_step(StepFailed(workflow_id=WF, step_id=sid, error=ERROR, attempt=0))
    if kind == "synthesize":
        return machine.start_synthesis(SynthesisStarted(workflow_id=WF))
    if kind == "complete":
        return machine.complete(WorkflowCompleted(workflow_id=WF, result="done", usage=USAGE))
    if kind == "fail":
        return machine.fail(WorkflowFailed(workflow_id=WF, error=ERROR))
    if kind == "cancel":
        return machine.cancel(WorkflowCancelled(workflow_id=WF))
    if kind == "plan_again":
        return machine.start_planning(WF, owner=owner, lease_until=NOW + 30, now=NOW)
    raise AssertionError(kind)


KINDS = (
    "start",
    "renew",
    "release_step",
    "complete_step",
    "fail_step",
    "release",
    "skip",
    "synthesize",
    "complete",
    "fail",
    "cancel",
    "plan_again",
)


def planned_record(plan: tuple[PlannedStep, ...]) -> WorkflowRecord:
    record = machine.apply(
        None, machine.create(WorkflowRequested(workflow_id=WF, task="t"), deadline_at=1e12)
    )
    record = machine.apply(
        record, machine.start_planning(WF, owner="planner", lease_until=NOW + 30, now=NOW)
    )
    roots = [StepDispatched(workflow_id=WF, step=s, task="t") for s in plan if not s.depends_on]
    return machine.apply(
        record, machine.record_plan(PlanCreated(workflow_id=WF, steps=plan), roots, owner="planner")
    )


@settings(max_examples=300, deadline=None)
@given(
    plan=plans(),
    attempts=st.lists(
        st.tuples(st.sampled_from(KINDS), st.integers(0, 3), st.integers(1, 3)),
        max_size=40,
    ),
)
def test_no_step_gets_two_outcomes_and_no_workflow_two_results(
    plan: tuple[PlannedStep, ...], attempts: list[tuple[str, int, int]]
) -> None:
    record = planned_record(plan)
    accepted: list[Transition] = []
    for kind, step_index, attempt in attempts:
        step = plan[step_index % len(plan)]
        transition = transition_for(kind, step, attempt)
        before = record
        try:
            record = machine.apply(record, transition)
        except TransitionConflict:
            assert machine.refusal(before, transition) is not None
            continue
        accepted.append(transition)
        if before.status.terminal:
            raise AssertionError(f"{kind} changed an ended workflow")
        if transition.step is not None:
            was = before.step(transition.step.step_id)
            assert was is not None
            if kind == "start":  # never while another (or the same) runner holds it
                assert not was.leased_at(NOW)
            if transition.step.outcome is not None and kind != "skip":
                assert was.owner == transition.fence  # only the holder records it

        outcomes = Counter(t.step.step_id for t in accepted if t.step and t.step.outcome)
        assert all(count == 1 for count in outcomes.values()), outcomes
        assert sum(1 for t in accepted if t.final is not None) <= 1
        finished = [s for s in record.steps if s.status.terminal]
        assert record.steps_finished == len(finished) == sum(outcomes.values())
        if record.status is WorkflowStatus.SYNTHESIZING:
            assert record.all_steps_finished
        if record.status is WorkflowStatus.COMPLETED:
            assert before.status is WorkflowStatus.SYNTHESIZING
            assert record.final_event is not None
            assert record.result == "done"
        used = sum((t.usage for t in accepted), TokenUsage())
        assert record.usage == used
        for step_record in record.steps:
            if step_record.status is StepStatus.COMPLETED:
                assert step_record.outcome is not None
                assert step_record.result == "r"


# -- planning: one planner at a time, one plan ---------------------------------------------

PLANNING_KINDS = ("start", "renew", "release", "record", "fail", "cancel", "deadline")


def planning_transition_for(kind: str, planner: int, lease: int) -> Transition:
    """One attempted planning move by one of three planners; many are refused.

    ``lease`` picks the lease a start takes (lapsed, lapsing now, or alive at ``NOW``)
    or a renewal sets.
    """
    owner = f"planner-{planner}"
    lease_until = NOW + (lease - 1) * 10
    if kind == "start":
        return machine.start_planning(WF, owner=owner, lease_until=lease_until, now=NOW)
    if kind == "renew":
        return machine.renew_planning_lease(WF, owner=owner, lease_until=lease_until)
    if kind == "release":
        return machine.release_planning_lease(WF, owner=owner)
    if kind == "record":
        step = PlannedStep(step_id="s1", index=0, title="t", instruction="i")
        plan = PlanCreated(workflow_id=WF, steps=(step,))
        dispatch = StepDispatched(workflow_id=WF, step=step, task="t")
        return machine.record_plan(plan, [dispatch], owner=owner, usage=USAGE)
    if kind == "fail":
        return machine.fail_planning(WorkflowFailed(workflow_id=WF, error=ERROR), owner=owner)
    if kind == "cancel":
        return machine.cancel(WorkflowCancelled(workflow_id=WF))
    if kind == "deadline":
        return machine.fail(WorkflowFailed(workflow_id=WF, error=ERROR))
    raise AssertionError(kind)


@settings(max_examples=300, deadline=None)
@given(
    attempts=st.lists(
        st.tuples(st.sampled_from(PLANNING_KINDS), st.integers(0, 2), st.integers(0, 2)),
        max_size=30,
    )
)
def test_planning_is_held_by_one_planner_and_ends_once(
    attempts: list[tuple[str, int, int]],
) -> None:
    record = machine.apply(
        None, machine.create(WorkflowRequested(workflow_id=WF, task="t"), deadline_at=1e12)
    )
    accepted: list[Transition] = []
    for kind, planner, lease in attempts:
        transition = planning_transition_for(kind, planner, lease)
        before = record
        try:
            record = machine.apply(record, transition)
        except TransitionConflict:
            assert machine.refusal(before, transition) is not None
            continue
        accepted.append(transition)
        assert not before.status.terminal, f"{kind} changed an ended workflow"
        if transition.move is machine.Move.START_PLANNING:
            # never while another (or the same) planner holds planning
            assert before.status in (WorkflowStatus.PENDING, WorkflowStatus.PLANNING)
            assert not before.planning_leased_at(NOW)
            assert record.planning_owner == transition.planning_owner
        if transition.rule.fenced:  # a lease holder's own write only
            assert before.status is WorkflowStatus.PLANNING
            assert before.planning_owner == transition.fence
        if record.status is WorkflowStatus.RUNNING:  # planned: nobody holds planning
            assert record.planning_owner is None
            assert not record.planning_leased_at(NOW)

        plans = [t for t in accepted if t.move is machine.Move.RECORD_PLAN]
        assert len(plans) <= 1
        assert sum(1 for t in accepted if t.final is not None) <= 1
        if plans:
            # the plan came from whoever held planning last
            holders = [t.planning_owner for t in accepted if t.move is machine.Move.START_PLANNING]
            assert plans[0].fence == holders[-1]
            assert record.steps_total == 1
        assert record.usage == sum((t.usage for t in accepted), TokenUsage())


# -- the handlers, with their events delivered in any order, some twice -------------------


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
async def test_any_delivery_order_gives_one_answer_and_one_run_per_step(
    data: st.DataObject,
) -> None:
    endpoint = ScriptedEndpoint()
    try:
        async with Harness(endpoint).running() as harness:
            workflow_id = await harness.submit("find a; find b; find c")
            for _ in range(200):
                pending = harness.pending
                if not pending:
                    break
                index = data.draw(st.integers(0, len(pending) - 1), label="next delivery")
                twice = data.draw(st.booleans(), label="delivered twice")
                await harness.deliver_pending(index, twice=twice)
            assert not harness.pending

            record = await harness.record(workflow_id)
            assert record.status is WorkflowStatus.COMPLETED
            assert len(endpoint.planner_calls()) == 1
            for title in ("find a", "find b", "find c"):
                assert len(endpoint.agent_calls(title)) == 1, title
            assert len(endpoint.synthesis_calls()) == 1
            assert len(harness.distinct_ids(workflow_id, "workflow.completed")) == 1
            assert len(harness.distinct_ids(workflow_id, "step.completed")) == 3
    finally:
        await endpoint.aclose()
