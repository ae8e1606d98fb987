"""The budget ledger in memory, with the same rule as ``budget.lua``."""

from __future__ import annotations

import dataclasses

from tributary_shared.core.budget import BudgetAccount, BudgetLimits, BudgetState, Reservation
from tributary_shared.core.errors import BudgetExceeded
from tributary_shared.core.events import BudgetExhausted, TokenUsage, derived_event_id
from tributary_shared.twins.store import MemoryWorkflowStore

__all__ = ["MemoryBudgetLedger"]


class MemoryBudgetLedger:
    def __init__(self, store: MemoryWorkflowStore) -> None:
        self._store = store  # the first refusal is logged with the workflow's events
        self.accounts: dict[str, BudgetAccount] = {}

    async def open(self, workflow_id: str, limits: BudgetLimits) -> None:
        self.accounts.setdefault(
            workflow_id,
            BudgetAccount(
                limit_tokens=limits.tokens or 0,
                limit_micro_usd=limits.micro_usd or 0,
                policy=limits.policy,
            ),
        )

    async def reserve(
        self, workflow_id: str, *, tenant_id: str, tokens: int, micro_usd: int
    ) -> Reservation:
        account = self.accounts.get(workflow_id, BudgetAccount())
        if account.admits(tokens=tokens, micro_usd=micro_usd):
            self.accounts[workflow_id] = dataclasses.replace(
                account,
                reserved_tokens=account.reserved_tokens + tokens,
                reserved_micro_usd=account.reserved_micro_usd + micro_usd,
            )
            return Reservation(tokens=tokens, micro_usd=micro_usd)
        if account.exhausted:
            raise BudgetExceeded("the workflow's budget cannot cover another LLM call")
        self.accounts[workflow_id] = dataclasses.replace(account, exhausted=True)
        state = account.state()
        announcement = BudgetExhausted(
            event_id=derived_event_id(workflow_id, "budget.exhausted"),
            workflow_id=workflow_id,
            tenant_id=tenant_id,
            limit_tokens=state.limit_tokens,
            used_tokens=state.used_tokens,
            limit_cost_usd=state.limit_cost_usd,
            used_cost_usd=state.used_cost_usd,
            policy=state.policy,
        )
        await self._store.append_log(workflow_id, (announcement,))
        raise BudgetExceeded(
            "the workflow's budget cannot cover another LLM call", announcement=announcement
        )

    async def settle(
        self, workflow_id: str, reservation: Reservation, usage: TokenUsage, micro_usd: int
    ) -> None:
        account = self.accounts.get(workflow_id, BudgetAccount())
        self.accounts[workflow_id] = dataclasses.replace(
            account,
            reserved_tokens=account.reserved_tokens - reservation.tokens,
            used_tokens=account.used_tokens + usage.total_tokens,
            reserved_micro_usd=account.reserved_micro_usd - reservation.micro_usd,
            used_micro_usd=account.used_micro_usd + micro_usd,
        )

    async def state(self, workflow_id: str) -> BudgetState:
        return self.accounts.get(workflow_id, BudgetAccount()).state()
