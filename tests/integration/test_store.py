"""Workflow state transitions against the real Redis: atomic, and impossible ones refused."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tributary_devstack.stack import Stack
from tributary_shared.core.errors import BudgetExceeded
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
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowRequested,
)
from tributary_shared.core.status import StepStatus, WorkflowStatus
from tributary_shared.runtime.budget import BudgetLedger, BudgetLimits
from tributary_shared.runtime.state import TransitionConflict, WorkflowKeys, WorkflowStore

pytestmark = pytest.mark.integration

ERROR = ErrorInfo(code="x", message="x", error_class="logic")


@pytest.fixture
async def store(stack: Stack) -> AsyncIterator[WorkflowStore]:
    redis = Redis.from_url(f"redis://127.0.0.1:{stack.config.redis_port}/0")
    yield WorkflowStore(redis, retention_s=600)
    await redis.aclose()


def steps(n: int) -> tuple[PlannedStep, ...]:
    return tuple(
        PlannedStep(step_id=f"s{i + 1}", index=i, title=f"t{i}", instruction=f"i{i}")
        for i in range(n)
    )


async def planned(store: WorkflowStore, n: int = 2) -> str:
    workflow_id = f"wf_{uuid.uuid4().hex}"
    await store.create_workflow(
        WorkflowRequested(workflow_id=workflow_id, task="t"), deadline_at=time.time() + 600
    )
    await store.start_planning(workflow_id)
    plan = PlanCreated(workflow_id=workflow_id, steps=steps(n))
    dispatches = [StepDispatched(workflow_id=workflow_id, step=s, task="t") for s in plan.steps]
    await store.record_plan(plan, dispatches, usage=TokenUsage(prompt_tokens=5))
    return workflow_id


async def run_step(store: WorkflowStore, workflow_id: str, step_id: str) -> tuple[int, int]:
    await store.start_step(StepStarted(workflow_id=workflow_id, step_id=step_id, attempt=1))
    return await store.finish_step(
        StepCompleted(
            workflow_id=workflow_id,
            step_id=step_id,
            result=f"r-{step_id}",
            iterations=1,
            usage=TokenUsage(prompt_tokens=10, completion_tokens=1),
        )
    )


async def test_a_workflow_is_created_once(store: WorkflowStore) -> None:
    event = WorkflowRequested(workflow_id=f"wf_{uuid.uuid4().hex}", task="t")
    assert await store.create_workflow(event, deadline_at=time.time() + 600) is None
    with pytest.raises(TransitionConflict):
        await store.create_workflow(event, deadline_at=time.time() + 600)


async def test_an_idempotency_key_maps_to_the_first_workflow(store: WorkflowStore) -> None:
    key = uuid.uuid4().hex
    first = WorkflowRequested(workflow_id=f"wf_{uuid.uuid4().hex}", task="t")
    second = WorkflowRequested(workflow_id=f"wf_{uuid.uuid4().hex}", task="t")
    assert (
        await store.create_workflow(first, deadline_at=time.time() + 600, idempotency_key_value=key)
        is None
    )
    assert (
        await store.create_workflow(
            second, deadline_at=time.time() + 600, idempotency_key_value=key
        )
        == first.workflow_id
    )
    assert await store.get_workflow(second.workflow_id) is None


async def test_the_lifecycle_counts_steps_and_usage(store: WorkflowStore) -> None:
    workflow_id = await planned(store)
    assert await run_step(store, workflow_id, "s1") == (1, 2)
    assert await run_step(store, workflow_id, "s2") == (2, 2)
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert record.status is WorkflowStatus.RUNNING
    assert record.all_steps_finished
    assert [s.status for s in record.steps] == [StepStatus.COMPLETED] * 2
    assert record.usage == TokenUsage(prompt_tokens=25, completion_tokens=2)

    await store.start_synthesis(SynthesisStarted(workflow_id=workflow_id))
    await store.complete_workflow(WorkflowCompleted(workflow_id=workflow_id, result="done"))
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert record.status is WorkflowStatus.COMPLETED
    assert record.result == "done"
    assert record.final_event is not None


async def test_a_step_result_is_recorded_once(store: WorkflowStore) -> None:
    workflow_id = await planned(store)
    await run_step(store, workflow_id, "s1")
    with pytest.raises(TransitionConflict):
        await store.finish_step(
            StepCompleted(workflow_id=workflow_id, step_id="s1", result="again", iterations=1)
        )
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert record.steps_finished == 1
    assert record.steps[0].result == "r-s1"


async def test_a_step_result_after_the_workflow_failed_is_refused(store: WorkflowStore) -> None:
    workflow_id = await planned(store)
    await store.start_step(StepStarted(workflow_id=workflow_id, step_id="s1", attempt=1))
    await store.fail_workflow(WorkflowFailed(workflow_id=workflow_id, error=ERROR))
    with pytest.raises(TransitionConflict):
        await store.finish_step(StepFailed(workflow_id=workflow_id, step_id="s1", error=ERROR))
    with pytest.raises(TransitionConflict):
        await store.start_step(StepStarted(workflow_id=workflow_id, step_id="s2", attempt=1))


async def test_a_second_final_result_is_refused(store: WorkflowStore) -> None:
    workflow_id = await planned(store, n=1)
    await run_step(store, workflow_id, "s1")
    await store.start_synthesis(SynthesisStarted(workflow_id=workflow_id))
    await store.complete_workflow(WorkflowCompleted(workflow_id=workflow_id, result="one"))
    with pytest.raises(TransitionConflict):
        await store.complete_workflow(WorkflowCompleted(workflow_id=workflow_id, result="two"))
    with pytest.raises(TransitionConflict):
        await store.fail_workflow(WorkflowFailed(workflow_id=workflow_id, error=ERROR))
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert record.result == "one"


async def test_the_log_holds_every_event_in_order_and_expires_after_the_end(
    store: WorkflowStore, stack: Stack
) -> None:
    workflow_id = await planned(store, n=1)
    await run_step(store, workflow_id, "s1")
    await store.start_synthesis(SynthesisStarted(workflow_id=workflow_id))
    await store.complete_workflow(WorkflowCompleted(workflow_id=workflow_id, result="r"))
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

    redis = Redis.from_url(f"redis://127.0.0.1:{stack.config.redis_port}/0")
    try:
        for key in WorkflowKeys(workflow_id).all():
            assert 0 < await redis.ttl(key) <= 600
    finally:
        await redis.aclose()


async def test_a_refused_transition_writes_nothing(store: WorkflowStore) -> None:
    workflow_id = await planned(store, n=1)
    before = await store.read_log(workflow_id)
    with pytest.raises(TransitionConflict):
        await store.complete_workflow(WorkflowCompleted(workflow_id=workflow_id, result="early"))
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert record.status is WorkflowStatus.RUNNING
    assert record.result is None
    assert len(await store.read_log(workflow_id)) == len(before)


async def test_the_first_refused_reservation_announces_the_budget_once(
    store: WorkflowStore, stack: Stack
) -> None:
    workflow_id = await planned(store, n=1)
    redis = Redis.from_url(f"redis://127.0.0.1:{stack.config.redis_port}/0")
    ledger = BudgetLedger(redis, ttl_s=600)
    try:
        await ledger.open(workflow_id, BudgetLimits(tokens=100, micro_usd=None, policy="fail"))
        held = await ledger.reserve(workflow_id, tenant_id="default", tokens=80, micro_usd=0)
        await ledger.settle(workflow_id, held, TokenUsage(prompt_tokens=30), 0)
        with pytest.raises(BudgetExceeded) as first:
            await ledger.reserve(workflow_id, tenant_id="default", tokens=80, micro_usd=0)
        with pytest.raises(BudgetExceeded) as second:
            await ledger.reserve(workflow_id, tenant_id="default", tokens=80, micro_usd=0)
    finally:
        await redis.aclose()
    announced = first.value.announcement
    assert announced is not None
    assert (announced.limit_tokens, announced.used_tokens, announced.policy) == (100, 30, "fail")
    assert announced.limit_cost_usd is None
    assert second.value.announcement is None
    logged = [e for e in await store.read_log(workflow_id) if e.type == "budget.exhausted"]
    assert [json.loads(e.event_json)["used_tokens"] for e in logged] == [30]
