"""The budget ledger contract: reservations held under an id until settled or expired,
refused past a limit, exhaustion announced once and only when the budget is used up."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

from tests.contract.conftest import Adapters
from tributary_shared.core.budget import BudgetLimits
from tributary_shared.core.errors import BudgetExceeded, BudgetNotOpened
from tributary_shared.core.events import TokenUsage, WorkflowRequested
from tributary_shared.core.ports import BudgetLedger

HOLD_S = 60.0
"""Long enough that no hold lapses during a test unless the test means it to."""
SHORT_HOLD_S = 0.05


async def new_workflow(adapters: Adapters) -> str:
    workflow_id = f"wf_{uuid.uuid4().hex}"
    await adapters.store.create_workflow(
        WorkflowRequested(workflow_id=workflow_id, task="t"), deadline_at=time.time() + 600
    )
    return workflow_id


async def opened(adapters: Adapters, limits: BudgetLimits) -> str:
    workflow_id = await new_workflow(adapters)
    await adapters.budgets.open(workflow_id, limits)
    return workflow_id


async def reserve(
    ledger: BudgetLedger, workflow_id: str, tokens: int, micro_usd: int = 0, hold_s: float = HOLD_S
) -> str:
    held = await ledger.reserve(
        workflow_id, tenant_id="acme", tokens=tokens, micro_usd=micro_usd, hold_s=hold_s
    )
    assert (held.tokens, held.micro_usd) == (tokens, micro_usd)
    return held.reservation_id


async def exhaustion_events(adapters: Adapters, workflow_id: str) -> list[dict[str, object]]:
    log = await adapters.store.read_log(workflow_id)
    return [json.loads(e.event_json) for e in log if e.type == "budget.exhausted"]


TOKENS_100 = BudgetLimits(tokens=100, micro_usd=None, policy="fail")


async def test_every_refusal_for_good_carries_the_one_announcement_logged(
    adapters: Adapters,
) -> None:
    ledger = adapters.budgets
    workflow_id = await opened(adapters, TOKENS_100)
    held = await reserve(ledger, workflow_id, 80)
    await ledger.settle(workflow_id, held, usage=TokenUsage(prompt_tokens=30), micro_usd=0)
    with pytest.raises(BudgetExceeded) as first:  # 30 used + 80 > 100 even alone
        await reserve(ledger, workflow_id, 80)
    with pytest.raises(BudgetExceeded) as second:
        await reserve(ledger, workflow_id, 80)
    announced = first.value.announcement
    assert announced is not None
    assert not first.value.busy
    assert first.value.code == "budget_exhausted"
    assert (announced.limit_tokens, announced.used_tokens, announced.policy) == (100, 30, "fail")
    assert (announced.limit_cost_usd, announced.tenant_id) == (None, "acme")
    assert second.value.announcement == announced  # the same event: published again, not new
    assert not second.value.busy
    assert [e["used_tokens"] for e in await exhaustion_events(adapters, workflow_id)] == [30]
    state = await ledger.state(workflow_id)
    assert (state.used_tokens, state.reserved_tokens, state.exhausted) == (30, 0, True)


async def test_a_refusal_caused_only_by_calls_in_flight_is_busy_not_exhaustion(
    adapters: Adapters,
) -> None:
    ledger = adapters.budgets
    workflow_id = await opened(
        adapters, BudgetLimits(tokens=None, micro_usd=1_000, policy="partial")
    )
    first = await reserve(ledger, workflow_id, 10, 600)
    with pytest.raises(BudgetExceeded) as refused:  # 600 held + 600 > 1000, but 600 alone fits
        await reserve(ledger, workflow_id, 10, 600)
    assert refused.value.busy
    assert refused.value.code == "budget_busy"
    assert refused.value.announcement is None
    state = await ledger.state(workflow_id)
    assert (state.limit_tokens, state.limit_cost_usd, state.policy) == (None, 0.001, "partial")
    assert (state.reserved_tokens, state.exhausted) == (10, False)
    assert await exhaustion_events(adapters, workflow_id) == []
    # Once the call in flight settles below its worst case, the other one fits.
    await ledger.settle(workflow_id, first, usage=TokenUsage(prompt_tokens=5), micro_usd=300)
    await reserve(ledger, workflow_id, 10, 600)
    assert not (await ledger.state(workflow_id)).exhausted


async def test_once_exhausted_a_refusal_is_never_only_busy(adapters: Adapters) -> None:
    ledger = adapters.budgets
    workflow_id = await opened(adapters, TOKENS_100)
    await reserve(ledger, workflow_id, 60)
    with pytest.raises(BudgetExceeded) as too_big:
        await reserve(ledger, workflow_id, 101)
    assert too_big.value.announcement is not None
    with pytest.raises(BudgetExceeded) as blocked:  # would fit alone, but the budget ran out
        await reserve(ledger, workflow_id, 50)
    assert not blocked.value.busy
    assert blocked.value.announcement == too_big.value.announcement
    assert len(await exhaustion_events(adapters, workflow_id)) == 1


async def test_reserving_from_a_budget_never_opened_is_refused(adapters: Adapters) -> None:
    ledger = adapters.budgets
    workflow_id = await new_workflow(adapters)
    with pytest.raises(BudgetNotOpened) as refused:
        await reserve(ledger, workflow_id, 1)
    assert refused.value.code == "budget_not_opened"
    assert refused.value.to_info().error_class == "fatal"
    with pytest.raises(BudgetNotOpened):
        await reserve(ledger, f"wf_{uuid.uuid4().hex}", 1)  # no workflow at all
    assert await exhaustion_events(adapters, workflow_id) == []


async def test_the_first_limits_stay(adapters: Adapters) -> None:
    ledger = adapters.budgets
    workflow_id = await opened(adapters, BudgetLimits(tokens=50, micro_usd=None, policy="fail"))
    await ledger.open(workflow_id, BudgetLimits(tokens=5000, micro_usd=None, policy="partial"))
    state = await ledger.state(workflow_id)
    assert (state.limit_tokens, state.policy) == (50, "fail")
    with pytest.raises(BudgetExceeded):
        await reserve(ledger, workflow_id, 51)


async def test_a_budget_without_limits_admits_every_call(adapters: Adapters) -> None:
    ledger = adapters.budgets
    workflow_id = await opened(adapters, BudgetLimits(tokens=None, micro_usd=None, policy="fail"))
    for _ in range(3):
        await reserve(ledger, workflow_id, 10**9, 10**9)
    assert (await ledger.state(workflow_id)).reserved_tokens == 3 * 10**9


async def test_settling_releases_exactly_that_reservation(adapters: Adapters) -> None:
    ledger = adapters.budgets
    workflow_id = await opened(
        adapters, BudgetLimits(tokens=1000, micro_usd=None, policy="partial")
    )
    first = await reserve(ledger, workflow_id, 400, 20)
    second = await reserve(ledger, workflow_id, 300, 10)
    assert first != second
    usage = TokenUsage(prompt_tokens=90, completion_tokens=10)
    await ledger.settle(workflow_id, first, usage=usage, micro_usd=7)
    state = await ledger.state(workflow_id)
    assert (state.used_tokens, state.reserved_tokens, state.used_cost_usd) == (100, 300, 7e-06)
    assert not state.exhausted


async def test_settling_twice_changes_nothing(adapters: Adapters) -> None:
    ledger = adapters.budgets
    workflow_id = await opened(
        adapters, BudgetLimits(tokens=1000, micro_usd=None, policy="partial")
    )
    held = await reserve(ledger, workflow_id, 400)
    other = await reserve(ledger, workflow_id, 200)
    usage = TokenUsage(prompt_tokens=50)
    await ledger.settle(workflow_id, held, usage=usage, micro_usd=5)
    await ledger.settle(workflow_id, held, usage=usage, micro_usd=5)
    await ledger.settle(workflow_id, "never-reserved", usage=usage, micro_usd=5)
    state = await ledger.state(workflow_id)
    assert (state.used_tokens, state.reserved_tokens, state.used_cost_usd) == (50, 200, 5e-06)
    await ledger.settle(workflow_id, other, usage=usage, micro_usd=5)
    assert (await ledger.state(workflow_id)).reserved_tokens == 0


async def test_a_hold_never_settled_is_released_by_the_next_reservation_after_it_expires(
    adapters: Adapters,
) -> None:
    ledger = adapters.budgets
    workflow_id = await opened(adapters, TOKENS_100)
    await reserve(ledger, workflow_id, 90, hold_s=SHORT_HOLD_S)  # its caller dies
    with pytest.raises(BudgetExceeded) as refused:
        await reserve(ledger, workflow_id, 20)
    assert refused.value.busy
    await asyncio.sleep(SHORT_HOLD_S * 3)
    await reserve(ledger, workflow_id, 20)
    state = await ledger.state(workflow_id)
    assert (state.reserved_tokens, state.used_tokens, state.exhausted) == (20, 0, False)


async def test_a_call_that_outlived_its_hold_is_still_charged_once(adapters: Adapters) -> None:
    ledger = adapters.budgets
    workflow_id = await opened(adapters, TOKENS_100)
    slow = await reserve(ledger, workflow_id, 50, hold_s=SHORT_HOLD_S)
    await asyncio.sleep(SHORT_HOLD_S * 3)
    other = await reserve(ledger, workflow_id, 10)  # lets the slow call's hold lapse
    assert (await ledger.state(workflow_id)).reserved_tokens == 10
    usage = TokenUsage(prompt_tokens=30, completion_tokens=10)
    await ledger.settle(workflow_id, slow, usage=usage, micro_usd=0)
    await ledger.settle(workflow_id, slow, usage=usage, micro_usd=0)
    state = await ledger.state(workflow_id)
    assert (state.used_tokens, state.reserved_tokens) == (40, 10)
    await ledger.settle(workflow_id, other, usage=TokenUsage(prompt_tokens=1), micro_usd=0)
    state = await ledger.state(workflow_id)
    assert (state.used_tokens, state.reserved_tokens) == (41, 0)
