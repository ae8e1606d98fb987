"""What only the Redis adapters do: a finished workflow's keys expire after the retention."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from tributary_devstack.stack import Stack
from tributary_shared.core import machine
from tributary_shared.core.events import (
    ErrorInfo,
    PlanCreated,
    PlannedStep,
    WorkflowFailed,
    WorkflowRequested,
)
from tributary_shared.core.keys import WorkflowKeys, listing_workflow_id, tenant_workflows_key
from tributary_shared.runtime.state import RedisWorkflowStore

pytestmark = pytest.mark.integration


async def test_a_finished_workflow_expires_after_the_retention(stack: Stack) -> None:
    redis = Redis.from_url(f"redis://127.0.0.1:{stack.config.redis_port}/0")
    store = RedisWorkflowStore(redis, retention_s=600)
    workflow_id = f"wf_{uuid.uuid4().hex}"
    try:
        await store.create_workflow(
            WorkflowRequested(workflow_id=workflow_id, task="t"), deadline_at=time.time() + 600
        )
        keys = WorkflowKeys(workflow_id).all()
        assert [await redis.ttl(key) for key in keys[:1]] == [-1]  # kept while it runs
        now = time.time()
        await store.apply(
            machine.start_planning(workflow_id, owner="planner", lease_until=now + 60, now=now)
        )
        step = PlannedStep(step_id="s1", index=0, title="t", instruction="i")
        plan = PlanCreated(workflow_id=workflow_id, steps=(step,))
        await store.apply(machine.record_plan(plan, [], owner="planner"))
        error = ErrorInfo(code="x", message="x", error_class="logic")
        await store.apply(machine.fail(WorkflowFailed(workflow_id=workflow_id, error=error)))
        for key in keys:
            assert 0 < await redis.ttl(key) <= 600
    finally:
        await redis.aclose()


async def test_a_listing_skips_and_drops_the_entries_of_expired_workflows(stack: Stack) -> None:
    redis = Redis.from_url(f"redis://127.0.0.1:{stack.config.redis_port}/0")
    store = RedisWorkflowStore(redis, retention_s=600)
    tenant = f"t-{uuid.uuid4().hex[:12]}"
    index = tenant_workflows_key(tenant)
    try:
        created: list[str] = []
        for age_s in (3600, 1800, 0):  # an hour, half an hour, and now
            request = WorkflowRequested(
                workflow_id=f"wf_{uuid.uuid4().hex}",
                tenant_id=tenant,
                task="t",
                occurred_at=datetime.now(UTC) - timedelta(seconds=age_s),
            )
            await store.create_workflow(request, deadline_at=time.time() + 600)
            created.append(request.workflow_id)
        old, expired, fresh = created
        await redis.delete(*WorkflowKeys(expired).all())  # as its retention would
        assert await redis.zcard(index) == 3

        page = await store.list_workflows(tenant_id=tenant, limit=10)

        assert [r.workflow_id for r in page.records] == [fresh, old]
        members: list[Any] = await redis.zrange(index, 0, -1)
        assert [listing_workflow_id(m.decode()) for m in members] == [old, fresh]
    finally:
        await redis.aclose()
