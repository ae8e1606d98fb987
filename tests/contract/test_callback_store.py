"""Callback store contract: a schedule no callback falls off until it is settled, leased
so that one deliverer at a time has each, and each workflow's record of tries.

Times here are far in the past (seconds since 1970, not now), so that callbacks of
real workflows on a shared Redis never come due in these tests.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from tests.contract.conftest import Adapters
from tests.contract.test_workflow_listing import cancelled, created, tenant
from tributary_shared.core.callbacks import CallbackAttempt
from tributary_shared.core.ports import CallbackProgress


def ids(n: int) -> list[str]:
    tag = uuid.uuid4().hex[:12]
    return [f"wf_{tag}_{i}" for i in range(n)]


async def test_due_callbacks_are_taken_in_order_and_leased(adapters: Adapters) -> None:
    callbacks = adapters.callbacks
    first, second, later = ids(3)
    base = 1000.0 + uuid.uuid4().int % 1000  # apart from other runs on a shared Redis
    await callbacks.schedule(second, at=base + 2)
    await callbacks.schedule(first, at=base + 1)
    await callbacks.schedule(later, at=base + 50)
    try:
        taken = await callbacks.due(now=base + 3, lease_s=30, limit=10)
        assert [w for w in taken if w in (first, second, later)] == [first, second]
        # Leased: no one else takes them before the lease lapses ...
        assert not set(await callbacks.due(now=base + 20, lease_s=30, limit=10)) & {first, second}
        # ... and then they come due again, unless settled meanwhile.
        again = await callbacks.due(now=base + 34, lease_s=30, limit=10)
        assert {first, second} <= set(again)
    finally:
        for workflow_id in (first, second, later):
            await callbacks.unschedule(workflow_id)


async def test_scheduling_twice_moves_nothing_and_a_settled_one_is_gone(
    adapters: Adapters,
) -> None:
    callbacks = adapters.callbacks
    [workflow_id] = ids(1)
    base = 3000.0 + uuid.uuid4().int % 1000
    await callbacks.schedule(workflow_id, at=base)
    await callbacks.schedule(workflow_id, at=base + 500)  # a redelivered terminal event
    assert workflow_id in await callbacks.due(now=base, lease_s=10, limit=100)
    await callbacks.retry_at(workflow_id, base + 100)
    assert workflow_id not in await callbacks.due(now=base + 99, lease_s=10, limit=100)
    assert workflow_id in await callbacks.due(now=base + 100, lease_s=10, limit=100)
    await callbacks.unschedule(workflow_id)
    await callbacks.retry_at(workflow_id, base)  # settled: a late retry does not revive it
    assert workflow_id not in await callbacks.due(now=base + 10_000, lease_s=10, limit=100)


async def test_tries_are_recorded_in_order_with_the_state(adapters: Adapters) -> None:
    callbacks = adapters.callbacks
    [workflow_id] = ids(1)
    assert (await callbacks.progress(workflow_id)).state == "pending"
    at = datetime(2026, 1, 1, tzinfo=UTC)
    failed = CallbackAttempt(at=at, status=None, error="no answer within 10s", duration_ms=10_000)
    delivered = CallbackAttempt(at=at, status=204, duration_ms=35)
    await callbacks.record_attempt(workflow_id, failed, state="pending")
    await callbacks.record_attempt(workflow_id, delivered, state="delivered")
    progress = await callbacks.progress(workflow_id)
    assert progress.state == "delivered"
    assert progress.attempts == (failed, delivered)


async def test_deleting_a_workflow_deletes_its_callbacks_tries(
    adapters: Adapters, backend: str
) -> None:
    if backend == "memory":
        pytest.skip("the twins are apart; Redis deletes the workflow's keys in one step")
    workflow_id = await created(adapters.store, tenant(), second=1)
    await cancelled(adapters.store, workflow_id)
    attempt = CallbackAttempt(at=datetime(2026, 1, 1, tzinfo=UTC), status=200, duration_ms=5)
    await adapters.callbacks.record_attempt(workflow_id, attempt, state="delivered")
    assert await adapters.store.purge(workflow_id) is True
    assert await adapters.callbacks.progress(workflow_id) == CallbackProgress()
