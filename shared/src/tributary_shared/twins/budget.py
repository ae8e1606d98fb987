"""The budget ledger in memory: ``BudgetAccount``'s rules, as ``budget.lua`` applies them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from tributary_shared.core.budget import (
    Admission,
    BudgetAccount,
    BudgetLimits,
    BudgetState,
    Reservation,
)
from tributary_shared.core.errors import BudgetExceeded, BudgetNotOpened
from tributary_shared.core.events import BudgetExhausted, TokenUsage, derived_event_id
from tributary_shared.twins.store import MemoryWorkflowStore

__all__ = ["MemoryBudgetLedger"]


class MemoryBudgetLedger:
    def __init__(
        self, store: MemoryWorkflowStore, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store  # the first refusal is logged with the workflow's events
        self._clock = clock  # holds expire on it, as Redis's on its own
        self.accounts: dict[str, BudgetAccount] = {}
        self.announcements: dict[str, BudgetExhausted] = {}

    async def open(self, workflow_id: str, limits: BudgetLimits) -> None:
        self.accounts.setdefault(workflow_id, BudgetAccount.opened(limits))

    async def reserve(
        self, workflow_id: str, *, tenant_id: str, tokens: int, micro_usd: int, hold_s: float
    ) -> Reservation:
        account = self.accounts.get(workflow_id)
        if account is None:
            raise BudgetNotOpened(f"workflow {workflow_id} has no budget: it was never opened")
        reservation = Reservation(
            reservation_id=uuid.uuid4().hex, tokens=tokens, micro_usd=micro_usd
        )
        now = self._clock()
        after, admission = account.reserve(reservation, now=now, expires_at=now + hold_s)
        self.accounts[workflow_id] = after
        if admission is Admission.ADMITTED:
            return reservation
        if admission is Admission.IN_FLIGHT:
            raise BudgetExceeded(
                "other LLM calls of the workflow hold the rest of its budget", busy=True
            )
        if account.exhausted:
            raise BudgetExceeded(
                "the workflow's budget cannot cover another LLM call",
                announcement=self.announcements.get(workflow_id),
            )
        state = after.state()
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
        self.announcements[workflow_id] = announcement
        await self._store.append_log(workflow_id, (announcement,))
        raise BudgetExceeded(
            "the workflow's budget cannot cover another LLM call", announcement=announcement
        )

    async def settle(
        self, workflow_id: str, reservation_id: str, *, usage: TokenUsage, micro_usd: int
    ) -> None:
        account = self.accounts.get(workflow_id)
        if account is not None:
            self.accounts[workflow_id] = account.settle(
                reservation_id, tokens=usage.total_tokens, micro_usd=micro_usd
            )

    async def state(self, workflow_id: str) -> BudgetState:
        return self.accounts.get(workflow_id, BudgetAccount()).state()
