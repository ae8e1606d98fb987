"""LLM calls on behalf of one workflow: routed to a model and paid from its budget.

Every call reserves its worst case from the workflow's budget first (the
estimated prompt plus the completion cap it is sent with, priced at the most
expensive model it may fall back to), then settles the real usage. When the
budget cannot cover a call, the call never starts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from tributary_shared.core.completions import Completion, Message, Role
from tributary_shared.core.errors import BudgetExceeded
from tributary_shared.core.events import BudgetExhausted, Complexity, TokenUsage
from tributary_shared.core.ports import BudgetLedger
from tributary_shared.runtime import metrics
from tributary_shared.runtime.budget.pricing import (
    cost_micro_usd,
    estimate_prompt_tokens,
    worst_case_micro_usd,
)
from tributary_shared.runtime.llm.client import LLMClient
from tributary_shared.runtime.llm.routing import model_chain
from tributary_shared.runtime.llm.structured import OutputT, complete_structured
from tributary_shared.runtime.settings import LLMSettings, ModelPrice

Announce = Callable[[BudgetExhausted], Awaitable[None]]


class MeteredLLM:
    def __init__(
        self,
        llm: LLMClient,
        ledger: BudgetLedger,
        *,
        settings: LLMSettings,
        prices: Mapping[str, ModelPrice],
        workflow_id: str,
        tenant_id: str,
        announce: Announce,
        complexity: Complexity | None = None,
    ) -> None:
        self._llm = llm
        self._ledger = ledger
        self._settings = settings
        self._prices = prices
        self._workflow_id = workflow_id
        self._tenant_id = tenant_id
        self._announce = announce
        self._complexity = complexity

    async def complete(
        self,
        *,
        role: Role,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
        iteration: int | None = None,
    ) -> Completion:
        models = model_chain(self._settings, role, complexity=self._complexity, iteration=iteration)
        cap = self._settings.max_completion_tokens
        worst = TokenUsage(
            prompt_tokens=estimate_prompt_tokens(messages, tools), completion_tokens=cap
        )
        try:
            reservation = await self._ledger.reserve(
                self._workflow_id,
                tenant_id=self._tenant_id,
                tokens=worst.total_tokens,
                micro_usd=worst_case_micro_usd(self._prices, models, worst),
            )
        except BudgetExceeded as exceeded:
            metrics.BUDGET_EXHAUSTED_TOTAL.labels(role).inc()
            if exceeded.announcement is not None:
                await self._announce(exceeded.announcement)
            raise
        completion: Completion | None = None
        try:
            completion = await self._llm.complete(
                role=role,
                messages=messages,
                tools=tools,
                response_format=response_format,
                models=models,
                max_tokens=cap,
            )
            return completion
        finally:
            usage = completion.usage if completion else TokenUsage()
            model = completion.model if completion else models[0]
            await self._ledger.settle(
                self._workflow_id, reservation, usage, cost_micro_usd(self._prices, model, usage)
            )

    async def structured(
        self,
        *,
        role: Role,
        messages: Sequence[Message],
        output: type[OutputT],
        schema_name: str,
    ) -> tuple[OutputT, TokenUsage]:
        async def once(
            conversation: Sequence[Message], response_format: dict[str, Any]
        ) -> Completion:
            return await self.complete(
                role=role, messages=conversation, response_format=response_format
            )

        return await complete_structured(
            once, messages=messages, output=output, schema_name=schema_name
        )


class WorkflowLLMs:
    """Hands out a ``MeteredLLM`` per workflow over the process-wide client."""

    def __init__(
        self,
        llm: LLMClient,
        ledger: BudgetLedger,
        *,
        settings: LLMSettings,
        prices: Mapping[str, ModelPrice],
        announce: Announce,
    ) -> None:
        self._llm = llm
        self._ledger = ledger
        self._settings = settings
        self._prices = prices
        self._announce = announce

    def for_workflow(
        self, workflow_id: str, tenant_id: str, *, complexity: Complexity | None = None
    ) -> MeteredLLM:
        return MeteredLLM(
            self._llm,
            self._ledger,
            settings=self._settings,
            prices=self._prices,
            workflow_id=workflow_id,
            tenant_id=tenant_id,
            announce=self._announce,
            complexity=complexity,
        )

    async def close(self) -> None:
        await self._llm.close()
