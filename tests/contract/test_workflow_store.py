"""The workflow store contract: every transition checked and written atomically, once."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

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
    WorkflowOptions,
    WorkflowRequested,
)
from tributary_shared.core.machine import TransitionConflict
from tributary_shared.core.ports import IdempotencyKeyReused, WorkflowStore
from tributary_shared.core.status import StepStatus, WorkflowStatus

ERROR = ErrorInfo(code="x", message="it broke", error_class="logic")
OWNER = "runner-a/1"
PLANNER = "planner-a/1"


def start(started: StepStarted, *, owner: str = OWNER, lease_s: float = 60) -> machine.Transition:
    """The step taken by ``owner`` with a lease of ``lease_s`` (negative: already lapsed)."""
    now = time.time()
    return machine.start_step(started, owner=owner, lease_until=now + lease_s, now=now)


def finish(outcome: StepCompleted | StepFailed, *, owner: str = OWNER) -> machine.Transition:
    return machine.finish_step(outcome, owner=owner)


def start_planning(
    workflow_id: str, *, owner: str = PLANNER, lease_s: float = 60
) -> machine.Transition:
    """Planning taken by ``owner`` with a lease of ``lease_s`` (negative: already lapsed)."""
    now = time.time()
    return machine.start_planning(workflow_id, owner=owner, lease_until=now + lease_s, now=now)


def plan_of(workflow_id: str, *, owner: str = PLANNER, n: int = 2) -> machine.Transition:
    plan = PlanCreated(workflow_id=workflow_id, steps=steps(n))
    roots = [StepDispatched(workflow_id=workflow_id, step=s, task="t") for s in plan.steps]
    return machine.record_plan(plan, roots, owner=owner)


async def requested(store: WorkflowStore) -> str:
    workflow_id = new_id()
    await store.create_workflow(
        WorkflowRequested(workflow_id=workflow_id, task="t"), deadline_at=time.time() + 600
    )
    return workflow_id


def new_id() -> str:
    return f"wf_{uuid.uuid4().hex}"


def steps(n: int, *, chain: bool = False) -> tuple[PlannedStep, ...]:
    return tuple(
        PlannedStep(
            step_id=f"s{i + 1}",
            index=i,
            title=f"t{i}",
            instruction=f"i{i}",
            depends_on=(f"s{i}",) if chain and i else (),
        )
        for i in range(n)
    )


async def planned(store: WorkflowStore, n: int = 2, *, chain: bool = False) -> str:
    workflow_id = new_id()
    await store.create_workflow(
        WorkflowRequested(workflow_id=workflow_id, task="t", options=WorkflowOptions(max_steps=5)),
        deadline_at=time.time() + 600,
    )
    await store.apply(start_planning(workflow_id))
    plan = PlanCreated(workflow_id=workflow_id, steps=steps(n, chain=chain))
    roots = [
        StepDispatched(workflow_id=workflow_id, step=s, task="t")
        for s in plan.steps
        if not s.depends_on
    ]
    await store.apply(
        machine.record_plan(plan, roots, owner=PLANNER, usage=TokenUsage(prompt_tokens=5))
    )
    return workflow_id


def completed(workflow_id: str, step_id: str, result: str | None = None) -> StepCompleted:
    return StepCompleted(
        workflow_id=workflow_id,
        step_id=step_id,
        result=result or f"r-{step_id}",
        iterations=1,
        usage=TokenUsage(prompt_tokens=10, completion_tokens=1),
        models=("m1",),
    )


async def run_step(store: WorkflowStore, workflow_id: str, step_id: str) -> tuple[int, int]:
    await store.apply(start(StepStarted(workflow_id=workflow_id, step_id=step_id, attempt=1)))
    applied = await store.apply(finish(completed(workflow_id, step_id)))
    return applied.steps_finished, applied.steps_total


async def test_a_workflow_is_created_once_with_its_request(store: WorkflowStore) -> None:
    event = WorkflowRequested(
        workflow_id=new_id(), task="t", tenant_id="acme", options=WorkflowOptions(deadline_s=60)
    )
    assert await store.create_workflow(event, deadline_at=123.5) is None
    with pytest.raises(TransitionConflict):
        await store.create_workflow(event, deadline_at=123.5)
    record = await store.get_workflow(event.workflow_id)
    assert record is not None
    assert (record.status, record.tenant_id, record.task) == (WorkflowStatus.PENDING, "acme", "t")
    assert record.options == event.options
    assert record.created_at == event.occurred_at
    assert record.deadline_at == 123.5
    assert await store.status(event.workflow_id) == (WorkflowStatus.PENDING, 123.5)
    assert await store.status(new_id()) == (None, None)


async def test_an_idempotency_key_maps_to_the_first_workflow(store: WorkflowStore) -> None:
    key = uuid.uuid4().hex
    first = WorkflowRequested(workflow_id=new_id(), task="t")
    again = WorkflowRequested(workflow_id=new_id(), task="t")
    other = WorkflowRequested(workflow_id=new_id(), task="something else")
    deadline = time.time() + 600
    assert (
        await store.create_workflow(first, deadline_at=deadline, idempotency_key_value=key) is None
    )
    assert (
        await store.create_workflow(again, deadline_at=deadline, idempotency_key_value=key)
        == first.workflow_id
    )
    with pytest.raises(IdempotencyKeyReused):
        await store.create_workflow(other, deadline_at=deadline, idempotency_key_value=key)
    assert await store.get_workflow(again.workflow_id) is None
    assert await store.get_workflow(other.workflow_id) is None


async def test_the_lifecycle_counts_steps_and_usage(store: WorkflowStore) -> None:
    workflow_id = await planned(store)
    assert await run_step(store, workflow_id, "s1") == (1, 2)
    assert await run_step(store, workflow_id, "s2") == (2, 2)
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert record.status is WorkflowStatus.RUNNING
    assert record.all_steps_finished
    assert [s.status for s in record.steps] == [StepStatus.COMPLETED] * 2
    assert [s.result for s in record.steps] == ["r-s1", "r-s2"]
    assert record.steps[0].models == ("m1",)
    outcome = record.steps[0].outcome
    assert isinstance(outcome, StepCompleted)
    assert (outcome.step_id, outcome.result) == ("s1", "r-s1")
    assert record.usage == TokenUsage(prompt_tokens=25, completion_tokens=2)

    await store.apply(machine.start_synthesis(SynthesisStarted(workflow_id=workflow_id)))
    final = WorkflowCompleted(workflow_id=workflow_id, result="done", partial=True)
    await store.apply(machine.complete(final))
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert (record.status, record.result, record.partial) == (
        WorkflowStatus.COMPLETED,
        "done",
        True,
    )
    assert record.final_event == final
    assert workflow_id not in await store.overdue(time.time() + 3600, limit=1_000_000)


async def test_synthesis_waits_for_every_step(store: WorkflowStore) -> None:
    workflow_id = await planned(store)
    await run_step(store, workflow_id, "s1")
    with pytest.raises(TransitionConflict):
        await store.apply(machine.start_synthesis(SynthesisStarted(workflow_id=workflow_id)))
    await run_step(store, workflow_id, "s2")
    await store.apply(machine.start_synthesis(SynthesisStarted(workflow_id=workflow_id)))


async def test_a_step_result_is_recorded_once(store: WorkflowStore) -> None:
    workflow_id = await planned(store)
    await run_step(store, workflow_id, "s1")
    with pytest.raises(TransitionConflict):
        await store.apply(finish(completed(workflow_id, "s1", "again")))
    failed = StepFailed(workflow_id=workflow_id, step_id="s1", error=ERROR)
    with pytest.raises(TransitionConflict):
        await store.apply(finish(failed))
    started = StepStarted(workflow_id=workflow_id, step_id="s1", attempt=2)
    with pytest.raises(TransitionConflict):  # a finished step does not start again
        await store.apply(start(started))
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert record.steps_finished == 1
    assert record.steps[0].result == "r-s1"


async def test_a_step_resumed_after_a_crash_counts_its_attempts(store: WorkflowStore) -> None:
    workflow_id = await planned(store)
    first = StepStarted(workflow_id=workflow_id, step_id="s1", attempt=1)
    await store.apply(start(first, owner="dead-runner", lease_s=-1))  # its lease lapsed
    second = StepStarted(workflow_id=workflow_id, step_id="s1", attempt=2)
    await store.apply(start(second))
    record = await store.get_workflow(workflow_id)
    assert record is not None
    step = record.steps[0]
    assert (step.status, step.attempt, step.owner) == (StepStatus.RUNNING, 2, OWNER)


async def test_a_leased_step_is_not_started_again(store: WorkflowStore) -> None:
    workflow_id = await planned(store)
    await store.apply(start(StepStarted(workflow_id=workflow_id, step_id="s1", attempt=1)))
    again = StepStarted(workflow_id=workflow_id, step_id="s1", attempt=2)
    with pytest.raises(TransitionConflict):
        await store.apply(start(again, owner="runner-b/2"))
    with pytest.raises(TransitionConflict):  # nor by its own owner while it holds it
        await store.apply(start(again))
    log = await store.read_log(workflow_id)
    assert [e.type for e in log].count("step.started") == 1


async def test_only_the_lease_holder_renews_and_records_the_outcome(store: WorkflowStore) -> None:
    workflow_id = await planned(store)
    await store.apply(start(StepStarted(workflow_id=workflow_id, step_id="s1", attempt=1)))
    later = time.time() + 120
    with pytest.raises(TransitionConflict):
        await store.apply(
            machine.renew_lease(workflow_id, "s1", owner="intruder", lease_until=later)
        )
    with pytest.raises(TransitionConflict):
        await store.apply(finish(completed(workflow_id, "s1"), owner="intruder"))
    await store.apply(machine.renew_lease(workflow_id, "s1", owner=OWNER, lease_until=later))
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert record.steps[0].lease_until == later
    await store.apply(finish(completed(workflow_id, "s1")))
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert (record.steps[0].status, record.steps[0].owner) == (StepStatus.COMPLETED, None)
    with pytest.raises(TransitionConflict):  # a finished step's lease is gone
        await store.apply(machine.renew_lease(workflow_id, "s1", owner=OWNER, lease_until=later))


async def test_a_released_lease_lets_the_next_runner_in_at_once(store: WorkflowStore) -> None:
    workflow_id = await planned(store)
    await store.apply(start(StepStarted(workflow_id=workflow_id, step_id="s1", attempt=1)))
    with pytest.raises(TransitionConflict):
        await store.apply(machine.release_lease(workflow_id, "s1", owner="intruder"))
    await store.apply(machine.release_lease(workflow_id, "s1", owner=OWNER))
    again = StepStarted(workflow_id=workflow_id, step_id="s1", attempt=2)
    await store.apply(start(again, owner="runner-b/2"))
    with pytest.raises(TransitionConflict):  # the first runner's late outcome is fenced off
        await store.apply(finish(completed(workflow_id, "s1")))
    await store.apply(finish(completed(workflow_id, "s1"), owner="runner-b/2"))


async def test_dependents_are_released_or_skipped_once(store: WorkflowStore) -> None:
    workflow_id = await planned(store, n=3, chain=True)
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert [s.status for s in record.steps] == [
        StepStatus.PENDING,
        StepStatus.WAITING,
        StepStatus.WAITING,
    ]
    with pytest.raises(TransitionConflict):  # a pending step is not started from waiting
        await store.apply(start(StepStarted(workflow_id=workflow_id, step_id="s2", attempt=1)))
    await run_step(store, workflow_id, "s1")
    release = StepDispatched(workflow_id=workflow_id, step=record.steps[1].as_planned(), task="t")
    await store.apply(machine.release_step(release))
    with pytest.raises(TransitionConflict):
        await store.apply(machine.release_step(release))
    skipped = StepFailed(workflow_id=workflow_id, step_id="s3", attempt=0, error=ERROR)
    applied = await store.apply(machine.skip_step(skipped))
    assert (applied.steps_finished, applied.steps_total) == (2, 3)
    with pytest.raises(TransitionConflict):
        await store.apply(machine.skip_step(skipped))
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert [s.status for s in record.steps] == [
        StepStatus.COMPLETED,
        StepStatus.PENDING,
        StepStatus.FAILED,
    ]
    assert record.steps[2].error == ERROR
    assert record.steps[2].outcome is not None


async def test_nothing_is_recorded_for_a_step_after_the_workflow_ended(
    store: WorkflowStore,
) -> None:
    workflow_id = await planned(store)
    await store.apply(start(StepStarted(workflow_id=workflow_id, step_id="s1", attempt=1)))
    await store.apply(machine.cancel(WorkflowCancelled(workflow_id=workflow_id, reason="stop")))
    with pytest.raises(TransitionConflict):
        await store.apply(finish(completed(workflow_id, "s1")))
    with pytest.raises(TransitionConflict):
        await store.apply(start(StepStarted(workflow_id=workflow_id, step_id="s2", attempt=1)))
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert (record.status, record.steps_finished) == (WorkflowStatus.CANCELLED, 0)


async def test_a_workflow_gets_one_final_result(store: WorkflowStore) -> None:
    workflow_id = await planned(store, n=1)
    await run_step(store, workflow_id, "s1")
    await store.apply(machine.start_synthesis(SynthesisStarted(workflow_id=workflow_id)))
    await store.apply(machine.complete(WorkflowCompleted(workflow_id=workflow_id, result="one")))
    for late in (
        machine.complete(WorkflowCompleted(workflow_id=workflow_id, result="two")),
        machine.fail(WorkflowFailed(workflow_id=workflow_id, error=ERROR)),
        machine.cancel(WorkflowCancelled(workflow_id=workflow_id)),
    ):
        with pytest.raises(TransitionConflict):
            await store.apply(late)
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert (record.status, record.result, record.error) == (WorkflowStatus.COMPLETED, "one", None)


async def test_failing_records_the_error_and_the_usage(store: WorkflowStore) -> None:
    workflow_id = await planned(store, n=1)
    failed = WorkflowFailed(workflow_id=workflow_id, error=ERROR)
    await store.apply(machine.fail(failed, usage=TokenUsage(prompt_tokens=7, completion_tokens=3)))
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert (record.status, record.error, record.final_event) == (
        WorkflowStatus.FAILED,
        ERROR,
        failed,
    )
    assert record.usage == TokenUsage(prompt_tokens=12, completion_tokens=3)


async def test_the_log_holds_every_event_in_order(store: WorkflowStore) -> None:
    workflow_id = await planned(store, n=1)
    await run_step(store, workflow_id, "s1")
    await store.apply(machine.start_synthesis(SynthesisStarted(workflow_id=workflow_id)))
    await store.apply(machine.complete(WorkflowCompleted(workflow_id=workflow_id, result="r")))
    entries = await store.read_log(workflow_id)
    assert [e.type for e in entries] == [
        "workflow.requested",
        "plan.created",
        "step.dispatched",
        "step.started",
        "step.completed",
        "synthesis.started",
        "workflow.completed",
    ]
    assert json.loads(entries[-1].event_json)["result"] == "r"
    later = await store.read_log(workflow_id, after=entries[3].stream_id)
    assert [e.stream_id for e in later] == [e.stream_id for e in entries[4:]]
    assert [e.type for e in await store.read_log(workflow_id, count=2)] == [
        "workflow.requested",
        "plan.created",
    ]


async def test_a_blocking_read_returns_when_an_event_arrives(store: WorkflowStore) -> None:
    workflow_id = await planned(store, n=1)
    last = (await store.read_log(workflow_id))[-1].stream_id
    assert await store.read_log(workflow_id, after=last, block_ms=50) == []
    reader = asyncio.create_task(store.read_log(workflow_id, after=last, block_ms=5000))
    await asyncio.sleep(0.05)
    await store.apply(start(StepStarted(workflow_id=workflow_id, step_id="s1", attempt=1)))
    entries = await asyncio.wait_for(reader, timeout=5)
    assert [e.type for e in entries] == ["step.started"]


async def test_a_refused_transition_writes_nothing(store: WorkflowStore) -> None:
    workflow_id = await planned(store, n=1)
    before = await store.read_log(workflow_id)
    with pytest.raises(TransitionConflict):
        await store.apply(
            machine.complete(WorkflowCompleted(workflow_id=workflow_id, result="early"))
        )
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert (record.status, record.result, record.final_event) == (
        WorkflowStatus.RUNNING,
        None,
        None,
    )
    assert len(await store.read_log(workflow_id)) == len(before)


async def test_overdue_workflows_are_listed_until_they_end(store: WorkflowStore) -> None:
    soon, later = new_id(), new_id()
    now = time.time()
    await store.create_workflow(WorkflowRequested(workflow_id=soon, task="t"), deadline_at=now - 5)
    await store.create_workflow(
        WorkflowRequested(workflow_id=later, task="t"), deadline_at=now + 3600
    )
    overdue = await store.overdue(now, limit=1_000_000)
    assert soon in overdue
    assert later not in overdue
    await store.apply(machine.fail(WorkflowFailed(workflow_id=soon, error=ERROR)))
    assert soon not in await store.overdue(now, limit=1_000_000)
    await store.forget_deadline(later)
    assert later not in await store.overdue(now + 7200, limit=1_000_000)


async def noted(store: WorkflowStore, workflow_id: str) -> set[str]:
    """Event ids of the workflow that the outbox holds as not known sent."""
    unsent = await store.unsent(time.time() + 1, limit=1_000_000)  # Redis: other tests' too
    return {n.event_id for n in unsent if n.workflow_id == workflow_id}


async def test_every_written_event_stays_unsent_until_marked_sent(store: WorkflowStore) -> None:
    workflow_id = new_id()
    before = time.time()
    requested = WorkflowRequested(workflow_id=workflow_id, task="t")
    await store.create_workflow(requested, deadline_at=before + 600)
    earlier = await store.unsent(before - 60, limit=1_000_000)  # noted at the time of the write
    assert workflow_id not in {note.workflow_id for note in earlier}
    assert await noted(store, workflow_id) == {requested.event_id}
    await store.mark_sent([requested])
    assert await noted(store, workflow_id) == set()

    await store.apply(start_planning(workflow_id))  # writes no event: notes none
    assert await noted(store, workflow_id) == set()
    plan = PlanCreated(workflow_id=workflow_id, steps=steps(2))
    dispatched = StepDispatched(workflow_id=workflow_id, step=plan.steps[0], task="t")
    await store.apply(machine.record_plan(plan, [dispatched], owner=PLANNER))
    assert await noted(store, workflow_id) == {plan.event_id, dispatched.event_id}
    await store.mark_sent([dispatched])  # one at a time, as they are published
    assert await noted(store, workflow_id) == {plan.event_id}
    await store.mark_sent([plan, plan])
    cancelled = WorkflowCancelled(workflow_id=workflow_id)
    await store.apply(machine.cancel(cancelled))
    assert await noted(store, workflow_id) == {cancelled.event_id}


async def test_a_refused_write_leaves_a_note_of_an_event_the_log_does_not_hold(
    store: WorkflowStore,
) -> None:
    workflow_id = new_id()
    await store.create_workflow(
        WorkflowRequested(workflow_id=workflow_id, task="t"), deadline_at=time.time() + 600
    )
    refused = PlanCreated(workflow_id=workflow_id, steps=steps(1))
    with pytest.raises(TransitionConflict):  # still pending: no plan may be recorded
        await store.apply(machine.record_plan(refused, [], owner=PLANNER))
    assert refused.event_id in await noted(store, workflow_id)
    logged = {json.loads(e.event_json)["event_id"] for e in await store.read_log(workflow_id)}
    assert refused.event_id not in logged


async def test_tracked_events_are_unsent_until_forgotten_whatever_their_ids(
    store: WorkflowStore,
) -> None:
    workflow_id = f'wf {uuid.uuid4().hex} ["odd", id]'
    announced = WorkflowCancelled(workflow_id=workflow_id, event_id="ev with spaces")
    await store.track([announced])
    unsent = await store.unsent(time.time() + 1, limit=1_000_000)
    [note] = [n for n in unsent if n.workflow_id == workflow_id]
    assert note.event_id == "ev with spaces"
    await store.forget_unsent([note])
    assert await noted(store, workflow_id) == set()


# -- the planning lease: one planner at a time, and only it records the plan --------------


async def test_a_workflow_being_planned_is_not_planned_again(store: WorkflowStore) -> None:
    workflow_id = await requested(store)
    await store.apply(start_planning(workflow_id))
    with pytest.raises(TransitionConflict):
        await store.apply(start_planning(workflow_id, owner="planner-b/2"))
    with pytest.raises(TransitionConflict):  # nor by its own planner while it holds it
        await store.apply(start_planning(workflow_id))
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert (record.status, record.planning_owner) == (WorkflowStatus.PLANNING, PLANNER)
    assert record.planning_leased_at(time.time())


async def test_a_lapsed_planning_lease_is_taken_over_and_fences_its_old_holder(
    store: WorkflowStore,
) -> None:
    workflow_id = await requested(store)
    await store.apply(start_planning(workflow_id, owner="dead-planner", lease_s=-1))
    await store.apply(start_planning(workflow_id))
    later = time.time() + 120
    for late in (  # the old holder's writes are all refused
        machine.renew_planning_lease(workflow_id, owner="dead-planner", lease_until=later),
        machine.release_planning_lease(workflow_id, owner="dead-planner"),
        plan_of(workflow_id, owner="dead-planner"),
        machine.fail_planning(
            WorkflowFailed(workflow_id=workflow_id, error=ERROR), owner="dead-planner"
        ),
    ):
        with pytest.raises(TransitionConflict):
            await store.apply(late)
    await store.apply(plan_of(workflow_id))
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert (record.status, record.planning_owner, record.planning_lease_until) == (
        WorkflowStatus.RUNNING,
        None,
        0.0,
    )
    assert [e.type for e in await store.read_log(workflow_id)].count("plan.created") == 1
    with pytest.raises(TransitionConflict):  # a planned workflow is not planned again
        await store.apply(start_planning(workflow_id, owner="planner-b/2", lease_s=-1))


async def test_only_the_planning_lease_holder_renews_and_gives_it_up(
    store: WorkflowStore,
) -> None:
    workflow_id = await requested(store)
    with pytest.raises(TransitionConflict):  # nothing to renew before planning starts
        await store.apply(
            machine.renew_planning_lease(workflow_id, owner=PLANNER, lease_until=time.time())
        )
    await store.apply(start_planning(workflow_id))
    later = time.time() + 120
    with pytest.raises(TransitionConflict):
        await store.apply(
            machine.renew_planning_lease(workflow_id, owner="intruder", lease_until=later)
        )
    await store.apply(machine.renew_planning_lease(workflow_id, owner=PLANNER, lease_until=later))
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert record.planning_lease_until == later
    with pytest.raises(TransitionConflict):
        await store.apply(machine.release_planning_lease(workflow_id, owner="intruder"))
    await store.apply(machine.release_planning_lease(workflow_id, owner=PLANNER))
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert (record.status, record.planning_owner) == (WorkflowStatus.PLANNING, None)
    await store.apply(start_planning(workflow_id, owner="planner-b/2"))  # at once
    with pytest.raises(TransitionConflict):
        await store.apply(plan_of(workflow_id))


async def test_planning_fails_once_and_by_its_holder_only(store: WorkflowStore) -> None:
    workflow_id = await requested(store)
    await store.apply(start_planning(workflow_id))
    failed = WorkflowFailed(workflow_id=workflow_id, error=ERROR)
    usage = TokenUsage(prompt_tokens=4, completion_tokens=1)
    with pytest.raises(TransitionConflict):
        await store.apply(machine.fail_planning(failed, owner="intruder", usage=usage))
    await store.apply(machine.fail_planning(failed, owner=PLANNER, usage=usage))
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert (record.status, record.error, record.final_event, record.usage) == (
        WorkflowStatus.FAILED,
        ERROR,
        failed,
        usage,
    )
    assert workflow_id not in await store.overdue(time.time() + 3600, limit=1_000_000)
    assert failed.event_id in await noted(store, workflow_id)  # its final event is noted
    for late in (
        machine.fail_planning(failed, owner=PLANNER),
        plan_of(workflow_id),
        start_planning(workflow_id, owner="planner-b/2", lease_s=-1),
    ):
        with pytest.raises(TransitionConflict):
            await store.apply(late)
