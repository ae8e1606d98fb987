"""The quota contract: running workflows per tenant, and request rates per key.

Run against the in-memory twins and (integration) against Redis with the real
workflow store, whose transitions are what ends a workflow's count.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from tributary_devstack.stack import Stack
from tributary_shared.core import machine
from tributary_shared.core.events import ErrorInfo, WorkflowFailed, WorkflowRequested
from tributary_shared.core.ports import RateLimiter, RunningWorkflows, WorkflowStore
from tributary_shared.runtime.quotas import RedisRateLimiter, RedisRunningWorkflows
from tributary_shared.runtime.state import RedisWorkflowStore
from tributary_shared.twins import MemoryRateLimiter, MemoryRunningWorkflows, MemoryWorkflowStore


@dataclass(frozen=True)
class Quotas:
    store: WorkflowStore
    running: RunningWorkflows
    rates: RateLimiter


@pytest.fixture
async def quotas(backend: str, request: pytest.FixtureRequest) -> AsyncIterator[Quotas]:
    if backend == "memory":
        store = MemoryWorkflowStore()
        yield Quotas(store, MemoryRunningWorkflows(store), MemoryRateLimiter())
        return
    stack: Stack = request.getfixturevalue("stack")
    redis = Redis.from_url(f"redis://127.0.0.1:{stack.config.redis_port}/0")
    yield Quotas(
        RedisWorkflowStore(redis, retention_s=600),
        RedisRunningWorkflows(redis, ttl_s=600),
        RedisRateLimiter(redis, name="contract"),
    )
    await redis.aclose()


def _tenant() -> str:
    return f"tenant-{uuid.uuid4().hex[:8]}"


async def _created(store: WorkflowStore, tenant_id: str) -> str:
    workflow_id = f"wf_{uuid.uuid4().hex}"
    request = WorkflowRequested(workflow_id=workflow_id, tenant_id=tenant_id, task="t")
    await store.create_workflow(request, deadline_at=time.time() + 600)
    return workflow_id


async def _ended(store: WorkflowStore, workflow_id: str, tenant_id: str) -> None:
    failed = WorkflowFailed(
        workflow_id=workflow_id,
        tenant_id=tenant_id,
        error=ErrorInfo(code="x", message="x", error_class="fatal", retryable=False),
    )
    await store.apply(machine.fail(failed))


async def test_a_tenant_at_its_ceiling_is_refused_until_one_of_its_workflows_ends(
    quotas: Quotas,
) -> None:
    tenant, other = _tenant(), _tenant()
    first = await _created(quotas.store, tenant)
    second = await _created(quotas.store, tenant)
    assert await quotas.running.admit(tenant, first, limit=2)
    assert await quotas.running.admit(tenant, second, limit=2)
    third = await _created(quotas.store, tenant)
    assert not await quotas.running.admit(tenant, third, limit=2)
    assert await quotas.running.admit(other, await _created(quotas.store, other), limit=2)
    assert await quotas.running.running(tenant) == 2

    await _ended(quotas.store, first, tenant)  # the store's transition, nothing else
    assert await quotas.running.running(tenant) == 1
    assert await quotas.running.admit(tenant, third, limit=2)
    assert not await quotas.running.admit(tenant, await _created(quotas.store, tenant), limit=2)


async def test_admitting_the_same_workflow_twice_counts_it_once(quotas: Quotas) -> None:
    tenant = _tenant()
    workflow_id = await _created(quotas.store, tenant)
    assert await quotas.running.admit(tenant, workflow_id, limit=1)
    assert await quotas.running.admit(tenant, workflow_id, limit=1)
    assert await quotas.running.running(tenant) == 1


async def test_a_workflow_admitted_but_not_yet_created_counts_until_released(
    quotas: Quotas,
) -> None:
    tenant = _tenant()
    assert await quotas.running.admit(tenant, f"wf_{uuid.uuid4().hex}", limit=1)
    pending = f"wf_{uuid.uuid4().hex}"
    assert not await quotas.running.admit(tenant, pending, limit=1)  # within its grace
    await quotas.running.release(tenant, pending)
    assert await quotas.running.running(tenant) == 1


async def test_a_burst_is_taken_then_the_next_request_waits_about_one_interval(
    quotas: Quotas,
) -> None:
    key = f"key-{uuid.uuid4().hex[:8]}"
    waits = [await quotas.rates.acquire(key, per_second=1.0, burst=3) for _ in range(3)]
    assert waits == [0.0, 0.0, 0.0]
    refused = await quotas.rates.acquire(key, per_second=1.0, burst=3)
    assert 0.5 < refused <= 1.0
    assert await quotas.rates.acquire(f"{key}-other", per_second=1.0, burst=3) == 0.0
