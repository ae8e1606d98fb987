"""Metered LLM calls: what each call costs the workflow's budget, and what a refused call does.

The calls go to a stand-in client (what the endpoint answers is set per test,
the model name it reports included) and are paid from the in-memory ledger,
which the contract suite holds to the Redis one.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from tributary_shared.core.budget import BudgetLimits
from tributary_shared.core.completions import (
    CallContext,
    Completion,
    DeltaListener,
    Message,
    Role,
    TryListener,
    WaitListener,
)
from tributary_shared.core.errors import BudgetExceeded, BudgetNotOpened, TransientError
from tributary_shared.core.events import BudgetExhausted, TokenUsage, WorkflowRequested
from tributary_shared.runtime.budget.pricing import estimate_prompt_tokens
from tributary_shared.runtime.llm.metered import MeteredLLM
from tributary_shared.runtime.settings import BudgetSettings, LLMSettings, ModelPrice
from tributary_shared.twins import MemoryBudgetLedger, MemoryWorkflowStore

MODEL = "gpt-4o-mini"
CAP = 100
MESSAGES: list[Message] = [{"role": "user", "content": "say hi"}]
WORST_TOKENS = estimate_prompt_tokens(MESSAGES) + CAP
PRICES = {MODEL: ModelPrice(prompt_per_1k_usd=0.15, completion_per_1k_usd=0.6)}


class StandInClient:
    """Answers every call as told; a call may be held open until the test lets it finish."""

    def __init__(self, *, served: str = MODEL, usage: TokenUsage | None = None) -> None:
        self.served = served
        self.usage = usage or TokenUsage(prompt_tokens=10, completion_tokens=5)
        self.calls = 0
        self.failure: Exception | None = None
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def complete(
        self,
        *,
        role: Role,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
        models: Sequence[str] | None = None,
        max_tokens: int | None = None,
        context: CallContext | None = None,
        on_wait: WaitListener | None = None,
        on_try: TryListener | None = None,
        on_delta: DeltaListener | None = None,
        stream: bool | None = None,
    ) -> Completion:
        self.calls += 1
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        return Completion(
            content="hi", tool_calls=(), finish_reason="stop", model=self.served, usage=self.usage
        )

    async def close(self) -> None:
        return None


class Setup:
    def __init__(self, client: StandInClient, *, hold_s: float = 30.0) -> None:
        self.store = MemoryWorkflowStore()
        self.ledger = MemoryBudgetLedger(self.store)
        self.client = client
        self.announced: list[BudgetExhausted] = []
        self.workflow_id = f"wf_{uuid.uuid4().hex}"
        self.hold_s = hold_s
        self.kafka_away = False

    async def start(self, limits: BudgetLimits | None) -> None:
        await self.store.create_workflow(
            WorkflowRequested(workflow_id=self.workflow_id, task="t"),
            deadline_at=time.time() + 600,
        )
        if limits is not None:
            await self.ledger.open(self.workflow_id, limits)

    def llm(self) -> MeteredLLM:
        async def announce(event: BudgetExhausted) -> None:
            if self.kafka_away:
                raise ConnectionError("Kafka is away")
            self.announced.append(event)

        return MeteredLLM(
            self.client,
            self.ledger,
            settings=LLMSettings.model_validate(
                {
                    "TRIBUTARY_SYNTHESIZER_MODEL": MODEL,
                    "TRIBUTARY_LLM_MAX_COMPLETION_TOKENS": CAP,
                }
            ),
            budgets=BudgetSettings(model_prices=PRICES, budget_hold_s=self.hold_s),
            workflow_id=self.workflow_id,
            tenant_id="acme",
            announce=announce,
        )

    async def call(self) -> Completion:
        return await self.llm().complete(role="synthesizer", messages=MESSAGES)


def tokens(limit: int) -> BudgetLimits:
    return BudgetLimits(tokens=limit, micro_usd=None, policy="partial")


async def test_a_dated_model_name_is_charged_at_its_models_price() -> None:
    usage = TokenUsage(prompt_tokens=1000, completion_tokens=1000)
    setup = Setup(StandInClient(served="gpt-4o-mini-2024-07-18", usage=usage))
    await setup.start(BudgetLimits(tokens=None, micro_usd=10_000_000, policy="partial"))
    await setup.call()
    state = await setup.ledger.state(setup.workflow_id)
    assert state.used_cost_usd == pytest.approx(0.75)
    assert (state.used_tokens, state.reserved_tokens) == (2000, 0)


async def test_a_cost_budget_runs_out_although_the_endpoint_renames_its_model() -> None:
    usage = TokenUsage(prompt_tokens=1000, completion_tokens=1000)  # $0.75 a call
    setup = Setup(StandInClient(served="gpt-4o-mini-2024-07-18", usage=usage))
    await setup.start(BudgetLimits(tokens=None, micro_usd=760_000, policy="partial"))
    await setup.call()  # the next call's worst case (about $0.06) no longer fits
    with pytest.raises(BudgetExceeded) as refused:
        await setup.call()
    assert not refused.value.busy
    assert [event.used_cost_usd for event in setup.announced] == [pytest.approx(0.75)]
    assert setup.client.calls == 1


async def test_an_unpriced_served_model_is_charged_the_price_it_was_reserved_at() -> None:
    usage = TokenUsage(prompt_tokens=1000, completion_tokens=1000)
    setup = Setup(StandInClient(served="someone-elses-model", usage=usage))
    await setup.start(BudgetLimits(tokens=None, micro_usd=10_000_000, policy="partial"))
    await setup.call()
    assert (await setup.ledger.state(setup.workflow_id)).used_cost_usd == pytest.approx(0.75)


async def test_a_call_waits_for_parallel_reservations_instead_of_exhausting_the_budget() -> None:
    client = StandInClient()
    client.gate = asyncio.Event()
    setup = Setup(client)
    await setup.start(tokens(WORST_TOKENS + WORST_TOKENS // 2))  # room for one worst case
    first = asyncio.create_task(setup.call())
    await client.entered.wait()
    second = asyncio.create_task(setup.call())
    await asyncio.sleep(0.3)  # the second is refused while the first holds its worst case
    assert not second.done()
    assert client.calls == 1
    client.gate.set()
    await asyncio.wait_for(asyncio.gather(first, second), timeout=10)
    state = await setup.ledger.state(setup.workflow_id)
    assert (state.exhausted, state.reserved_tokens, state.used_tokens) == (False, 0, 30)
    assert setup.announced == []
    assert client.calls == 2


async def test_a_hold_left_by_a_dead_call_stops_blocking_after_its_expiry() -> None:
    setup = Setup(StandInClient(), hold_s=0.3)
    await setup.start(tokens(WORST_TOKENS + WORST_TOKENS // 2))
    await setup.ledger.reserve(  # a replica reserved, then died before settling
        setup.workflow_id, tenant_id="acme", tokens=WORST_TOKENS, micro_usd=0, hold_s=0.3
    )
    started = time.monotonic()
    await asyncio.wait_for(setup.call(), timeout=10)
    assert 0.2 < time.monotonic() - started < 5
    state = await setup.ledger.state(setup.workflow_id)
    assert (state.exhausted, state.reserved_tokens, state.used_tokens) == (False, 0, 15)


async def test_a_call_that_no_settlement_can_make_fit_is_refused_at_once() -> None:
    setup = Setup(StandInClient(), hold_s=30)
    await setup.start(tokens(WORST_TOKENS - 1))
    started = time.monotonic()
    with pytest.raises(BudgetExceeded) as refused:
        await setup.call()
    assert time.monotonic() - started < 1
    assert not refused.value.busy
    assert len(setup.announced) == 1
    assert setup.client.calls == 0


async def test_the_wait_for_parallel_calls_ends_with_a_busy_refusal() -> None:
    setup = Setup(StandInClient(), hold_s=0.3)
    await setup.start(tokens(WORST_TOKENS + WORST_TOKENS // 2))
    await setup.ledger.reserve(  # another call, held longer than this one waits
        setup.workflow_id, tenant_id="acme", tokens=WORST_TOKENS, micro_usd=0, hold_s=60
    )
    started = time.monotonic()
    with pytest.raises(BudgetExceeded) as refused:
        await setup.call()
    assert 0.2 < time.monotonic() - started < 5
    assert refused.value.busy
    assert refused.value.code == "budget_busy"
    assert setup.announced == []
    assert setup.client.calls == 0
    assert not (await setup.ledger.state(setup.workflow_id)).exhausted


async def test_a_workflow_without_a_budget_gets_no_call() -> None:
    setup = Setup(StandInClient())
    await setup.start(None)
    with pytest.raises(BudgetNotOpened):
        await setup.call()
    assert setup.client.calls == 0


async def test_a_failed_call_gives_its_reservation_back() -> None:
    client = StandInClient()
    client.failure = TransientError("the endpoint is down")
    setup = Setup(client)
    await setup.start(tokens(10 * WORST_TOKENS))
    with pytest.raises(TransientError):
        await setup.call()
    state = await setup.ledger.state(setup.workflow_id)
    assert (state.reserved_tokens, state.used_tokens) == (0, 0)


async def test_an_exhaustion_that_cannot_be_announced_is_still_a_refusal() -> None:
    setup = Setup(StandInClient(), hold_s=30)
    await setup.start(tokens(WORST_TOKENS - 1))
    setup.kafka_away = True
    with pytest.raises(BudgetExceeded):  # not the publisher's error
        await setup.call()
    assert setup.client.calls == 0
    logged = [e.type for e in await setup.store.read_log(setup.workflow_id)]
    assert "budget.exhausted" in logged  # it stays in the workflow's log
