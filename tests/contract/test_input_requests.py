"""The store contract for input requests: a step pauses, is answered or expires, once."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.contract.test_workflow_store import (
    ERROR,
    OWNER,
    PLANNER,
    finish,
    planned,
    requested,
    start,
    start_planning,
    steps,
)
from tributary_shared.core import machine
from tributary_shared.core.events import (
    InputAnswered,
    InputRequested,
    PlanCreated,
    PlannedStep,
    StepDispatched,
    StepFailed,
    StepStarted,
    TokenUsage,
    WorkflowCancelled,
    WorkflowFailed,
)
from tributary_shared.core.machine import TransitionConflict
from tributary_shared.core.ports import WorkflowStore
from tributary_shared.core.records import InputRequest, StepCheckpoint
from tributary_shared.core.status import StepStatus, WorkflowStatus


def checkpoint(request_id: str) -> StepCheckpoint:
    return StepCheckpoint(
        request_id=request_id,
        tool_call_id="call_1",
        messages=({"role": "user", "content": "hi"},),
        iterations=2,
        usage=TokenUsage(prompt_tokens=7, completion_tokens=3),
        models=("m1",),
    )


def asked(workflow_id: str, step_id: str, *, expires_in: float | None = None) -> InputRequested:
    now = datetime.now(UTC)
    return InputRequested(
        workflow_id=workflow_id,
        request_id=f"in_{step_id}",
        step_id=step_id,
        question=f"which for {step_id}?",
        choices=("a", "b"),
        requested_at=now,
        expires_at=now + timedelta(seconds=expires_in) if expires_in is not None else None,
    )


async def pause(store: WorkflowStore, workflow_id: str, step_id: str, **kw: float) -> InputRequest:
    await store.apply(start(StepStarted(workflow_id=workflow_id, step_id=step_id, attempt=1)))
    question = asked(workflow_id, step_id, **kw)
    await store.apply(
        machine.pause_step(
            question, checkpoint(question.request_id), owner=OWNER, timeout_answer="a"
        )
    )
    record = await store.get_workflow(workflow_id)
    assert record is not None
    request = record.input_request(question.request_id)
    assert request is not None
    return request


def answer(workflow_id: str, request: InputRequest, text: str = "b") -> machine.Transition:
    assert request.step_id is not None
    answered = InputAnswered(
        workflow_id=workflow_id,
        request_id=request.request_id,
        step_id=request.step_id,
        answer=text,
        source="http",
    )
    step = PlannedStep(step_id=request.step_id, index=0, title="t", instruction="i")
    return machine.answer_input(
        request, answered, StepDispatched(workflow_id=workflow_id, step=step, task="t")
    )


async def test_a_paused_step_holds_no_lease_and_keeps_its_checkpoint(
    store: WorkflowStore,
) -> None:
    workflow_id = await planned(store)
    request = await pause(store, workflow_id, "s1")
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert record.status is WorkflowStatus.AWAITING_INPUT
    step = record.step("s1")
    assert step is not None
    assert (step.status, step.owner, step.lease_until) == (StepStatus.AWAITING_INPUT, None, 0.0)
    assert step.checkpoint == checkpoint(request.request_id)
    assert [r.request_id for r in record.open_inputs] == ["in_s1"]
    assert (request.question, request.choices, request.timeout_answer) == (
        "which for s1?",
        ("a", "b"),
        "a",
    )
    log = await store.read_log(workflow_id)
    assert log[-1].type == "input.requested"


async def test_only_the_lease_holder_pauses_a_running_step(store: WorkflowStore) -> None:
    workflow_id = await planned(store)
    await store.apply(start(StepStarted(workflow_id=workflow_id, step_id="s1", attempt=1)))
    question = asked(workflow_id, "s1")
    with pytest.raises(TransitionConflict):
        await store.apply(
            machine.pause_step(question, checkpoint("in_s1"), owner="other/1", timeout_answer=None)
        )
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert record.status is WorkflowStatus.RUNNING
    assert record.input_requests == ()


async def test_parallel_pauses_are_answered_independently_and_once(store: WorkflowStore) -> None:
    workflow_id = await planned(store)
    first = await pause(store, workflow_id, "s1")
    second = await pause(store, workflow_id, "s2")
    await store.apply(answer(workflow_id, second))
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert record.status is WorkflowStatus.AWAITING_INPUT  # s1 still waits
    step = record.step("s2")
    assert step is not None
    assert step.status is StepStatus.PENDING
    with pytest.raises(TransitionConflict):
        await store.apply(answer(workflow_id, second, "a"))  # answered already
    await store.apply(answer(workflow_id, first))
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert record.status is WorkflowStatus.RUNNING
    assert [(r.request_id, r.state, r.answer) for r in record.input_requests] == [
        ("in_s1", "answered", "b"),
        ("in_s2", "answered", "b"),
    ]
    types = [e.type for e in await store.read_log(workflow_id)]
    assert types.count("input.answered") == 2


async def test_a_resumed_step_starts_again_and_finishes_while_others_wait(
    store: WorkflowStore,
) -> None:
    workflow_id = await planned(store)
    first = await pause(store, workflow_id, "s1")
    await pause(store, workflow_id, "s2")
    await store.apply(answer(workflow_id, first))
    await store.apply(start(StepStarted(workflow_id=workflow_id, step_id="s1", attempt=2)))
    failed = StepFailed(workflow_id=workflow_id, step_id="s1", attempt=2, error=ERROR)
    applied = await store.apply(finish(failed))
    assert applied.steps_finished == 1
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert record.status is WorkflowStatus.AWAITING_INPUT


async def test_expiry_gives_the_default_answer_or_fails_the_step(store: WorkflowStore) -> None:
    workflow_id = await planned(store)
    first = await pause(store, workflow_id, "s1", expires_in=-1)
    second = await pause(store, workflow_id, "s2", expires_in=-1)
    due = await store.due_inputs(time.time())
    assert {(workflow_id, "in_s1"), (workflow_id, "in_s2")} <= set(due)
    expired, redispatch = answer(workflow_id, first, "a").events
    assert isinstance(expired, InputAnswered)
    assert isinstance(redispatch, StepDispatched)
    timed_out = expired.model_copy(update={"source": "timeout"})
    await store.apply(machine.expire_input(first, (timed_out, redispatch)))
    failed = StepFailed(
        workflow_id=workflow_id,
        step_id="s2",
        attempt=1,
        error=ERROR.model_copy(update={"code": "input_timeout"}),
    )
    applied = await store.apply(machine.expire_input(second, failed))
    assert applied.steps_finished == 1
    with pytest.raises(TransitionConflict):
        await store.apply(machine.expire_input(second, failed))
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert record.status is WorkflowStatus.RUNNING
    steps = {s.step_id: s.status for s in record.steps}
    assert steps == {"s1": StepStatus.PENDING, "s2": StepStatus.FAILED}
    assert [(r.state, r.answer) for r in record.input_requests] == [
        ("expired", "a"),
        ("expired", None),
    ]
    due = await store.due_inputs(time.time())
    assert (workflow_id, "in_s1") not in due
    assert (workflow_id, "in_s2") not in due


async def test_a_paused_workflow_is_cancelled_or_failed_and_answers_are_refused(
    store: WorkflowStore,
) -> None:
    cancelled_id = await planned(store)
    request = await pause(store, cancelled_id, "s1")
    await store.apply(machine.cancel(WorkflowCancelled(workflow_id=cancelled_id)))
    with pytest.raises(TransitionConflict):
        await store.apply(answer(cancelled_id, request))
    failed_id = await planned(store)
    await pause(store, failed_id, "s1")
    await store.apply(machine.fail(WorkflowFailed(workflow_id=failed_id, error=ERROR)))
    for workflow_id, status in (
        (cancelled_id, WorkflowStatus.CANCELLED),
        (failed_id, WorkflowStatus.FAILED),
    ):
        record = await store.get_workflow(workflow_id)
        assert record is not None
        assert record.status is status


async def planned_for_approval(store: WorkflowStore) -> tuple[str, InputRequest]:
    workflow_id = await requested(store)
    await store.apply(start_planning(workflow_id))
    plan = PlanCreated(workflow_id=workflow_id, steps=steps(2))
    now = datetime.now(UTC)
    question = InputRequested(
        workflow_id=workflow_id,
        request_id="in_plan",
        kind="plan_approval",
        question="Approve?",
        choices=("approve", "reject"),
        requested_at=now,
    )
    await store.apply(machine.record_plan_for_approval(plan, question, owner=PLANNER))
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert record.status is WorkflowStatus.AWAITING_INPUT
    assert len(record.steps) == 2
    request = record.input_request("in_plan")
    assert request is not None
    assert request.kind == "plan_approval"
    return workflow_id, request


def plan_answer(workflow_id: str, text: str) -> InputAnswered:
    return InputAnswered(workflow_id=workflow_id, request_id="in_plan", answer=text, source="http")


async def test_an_approved_plan_runs_and_is_approved_once(store: WorkflowStore) -> None:
    workflow_id, request = await planned_for_approval(store)
    roots = [StepDispatched(workflow_id=workflow_id, step=step, task="t") for step in steps(2)]
    approve = machine.approve_plan(request, plan_answer(workflow_id, "approve"), roots)
    await store.apply(approve)
    with pytest.raises(TransitionConflict):
        await store.apply(approve)
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert record.status is WorkflowStatus.RUNNING
    types = [e.type for e in await store.read_log(workflow_id)]
    assert types[-3:] == ["input.answered", "step.dispatched", "step.dispatched"]


async def test_a_rejected_plan_ends_the_workflow(store: WorkflowStore) -> None:
    workflow_id, request = await planned_for_approval(store)
    failed = WorkflowFailed(workflow_id=workflow_id, error=ERROR)
    await store.apply(machine.reject_plan(request, plan_answer(workflow_id, "reject"), failed))
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert record.status is WorkflowStatus.FAILED
    assert record.open_inputs == ()
    assert await store.status(workflow_id) == (WorkflowStatus.FAILED, record.deadline_at)


async def test_a_rejected_step_fails_once(store: WorkflowStore) -> None:
    workflow_id = await planned(store)
    request = await pause(store, workflow_id, "s1")
    answered = InputAnswered(
        workflow_id=workflow_id, request_id=request.request_id, answer="b", source="http"
    )
    failed = StepFailed(workflow_id=workflow_id, step_id="s1", attempt=1, error=ERROR)
    applied = await store.apply(machine.reject_step(request, answered, failed))
    assert applied.steps_finished == 1
    with pytest.raises(TransitionConflict):
        await store.apply(machine.reject_step(request, answered, failed))
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert record.status is WorkflowStatus.RUNNING
    step = record.step("s1")
    assert step is not None
    assert step.status is StepStatus.FAILED
