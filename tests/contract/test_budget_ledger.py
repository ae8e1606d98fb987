"""The budget ledger contract: reservations refused past a limit, announced once."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.contract.conftest import Adapters
from tributary_shared.core.budget import BudgetLimits
from tributary_shared.core.errors import BudgetExceeded
from tributary_shared.core.events import TokenUsage, WorkflowRequested


async def new_workflow(adapters: Adapters) -> str:
    workflow_id = f"wf_{uuid.uuid4().hex}"
    await adapters.store.create_workflow(
        WorkflowRequested(workflow_id=workflow_id, task="t"), deadline_at=time.time() + 600
    )
    return workflow_id


async def test_the_first_refused_reservation_announces_the_budget_once(
    adapters: Adapters,
) -> None:
    workflow_id = await new_workflow(adapters)
    ledger = adapters.budgets
    await ledger.open(workflow_id, BudgetLimits(tokens=100, micro_usd=None, policy="fail"))
    held = await ledger.reserve(workflow_id, tenant_id="acme", tokens=80, micro_usd=0)
    await ledger.settle(workflow_id, held, TokenUsage(prompt_tokens=30), 0)
    with pytest.raises(BudgetExceeded) as first:
        await ledger.reserve(workflow_id, tenant_id="acme", tokens=80, micro_usd=0)
    with pytest.raises(BudgetExceeded) as second:
        await ledger.reserve(workflow_id, tenant_id="acme", tokens=80, micro_usd=0)
    announced = first.value.announcement
    assert announced is not None
    assert (announced.limit_tokens, announced.used_tokens, announced.policy) == (100, 30, "fail")
    assert (announced.limit_cost_usd, announced.tenant_id) == (None, "acme")
    assert second.value.announcement is None
    logged = [e for e in await adapters.store.read_log(workflow_id) if e.type == "budget.exhausted"]
    assert [json.loads(e.event_json)["used_tokens"] for e in logged] == [30]
    state = await ledger.state(workflow_id)
    assert (state.used_tokens, state.reserved_tokens, state.exhausted) == (30, 0, True)


async def test_reservations_in_flight_count_against_the_limit(adapters: Adapters) -> None:
    workflow_id = await new_workflow(adapters)
    ledger = adapters.budgets
    await ledger.open(workflow_id, BudgetLimits(tokens=None, micro_usd=1_000, policy="partial"))
    await ledger.reserve(workflow_id, tenant_id="t", tokens=10, micro_usd=600)
    with pytest.raises(BudgetExceeded):
        await ledger.reserve(workflow_id, tenant_id="t", tokens=10, micro_usd=600)
    state = await ledger.state(workflow_id)
    assert (state.limit_tokens, state.limit_cost_usd, state.policy) == (None, 0.001, "partial")
    assert state.reserved_tokens == 10


async def test_the_first_limits_stay(adapters: Adapters) -> None:
    workflow_id = await new_workflow(adapters)
    ledger = adapters.budgets
    await ledger.open(workflow_id, BudgetLimits(tokens=50, micro_usd=None, policy="fail"))
    await ledger.open(workflow_id, BudgetLimits(tokens=5000, micro_usd=None, policy="partial"))
    state = await ledger.state(workflow_id)
    assert (state.limit_tokens, state.policy) == (50, "fail")
    with pytest.raises(BudgetExceeded):
        await ledger.reserve(workflow_id, tenant_id="t", tokens=51, micro_usd=0)


async def test_settling_replaces_the_reservation_with_the_usage(adapters: Adapters) -> None:
    workflow_id = await new_workflow(adapters)
    ledger = adapters.budgets
    await ledger.open(workflow_id, BudgetLimits(tokens=1000, micro_usd=None, policy="partial"))
    held = await ledger.reserve(workflow_id, tenant_id="t", tokens=400, micro_usd=20)
    await ledger.settle(workflow_id, held, TokenUsage(prompt_tokens=90, completion_tokens=10), 7)
    state = await ledger.state(workflow_id)
    assert (state.used_tokens, state.reserved_tokens, state.used_cost_usd) == (100, 0, 7e-06)
    assert not state.exhausted
