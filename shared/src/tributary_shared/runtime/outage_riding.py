"""Ports that ride out a Kafka or Redis outage in place, for work that runs long.

An agent step asks Redis for its budget, its loop records and its effect
ledger between LLM calls. If one of those calls failed on a Redis blip, the
step would fail with it and its next attempt would make every LLM call again.
These wrappers wait the outage out instead (up to a patience), so the step
carries on with what it has done. The workflow store is not wrapped: short
handlers fail on an outage and the consumer runtime waits it out for them.
"""

from __future__ import annotations

import dataclasses

from tributary_shared.core.budget import BudgetLimits, BudgetState, Reservation
from tributary_shared.core.events import TokenUsage
from tributary_shared.core.ports import (
    BudgetLedger,
    CallHistory,
    EffectIntent,
    EffectLedger,
    Ports,
)
from tributary_shared.runtime.retry import ride_out_outages

__all__ = ["riding_out_outages"]


def riding_out_outages(ports: Ports, *, patience_s: float) -> Ports:
    """``ports`` with the budget ledger, call history and effect ledger riding out outages."""
    return dataclasses.replace(
        ports,
        budgets=_Budgets(ports.budgets, patience_s),
        calls=_Calls(ports.calls, patience_s),
        effects=_Effects(ports.effects, patience_s),
    )


class _Budgets:
    def __init__(self, inner: BudgetLedger, patience_s: float) -> None:
        self._inner = inner
        self._patience_s = patience_s

    async def open(self, workflow_id: str, limits: BudgetLimits) -> None:
        await ride_out_outages(
            lambda: self._inner.open(workflow_id, limits),
            what="opening a budget",
            patience_s=self._patience_s,
        )

    async def reserve(
        self, workflow_id: str, *, tenant_id: str, tokens: int, micro_usd: int, hold_s: float
    ) -> Reservation:
        return await ride_out_outages(
            lambda: self._inner.reserve(
                workflow_id, tenant_id=tenant_id, tokens=tokens, micro_usd=micro_usd, hold_s=hold_s
            ),
            what="reserving from a budget",
            patience_s=self._patience_s,
        )

    async def settle(
        self, workflow_id: str, reservation_id: str, *, usage: TokenUsage, micro_usd: int
    ) -> None:
        await ride_out_outages(
            lambda: self._inner.settle(
                workflow_id, reservation_id, usage=usage, micro_usd=micro_usd
            ),
            what="settling a budget reservation",
            patience_s=self._patience_s,
        )

    async def state(self, workflow_id: str) -> BudgetState:
        return await ride_out_outages(
            lambda: self._inner.state(workflow_id),
            what="reading a budget",
            patience_s=self._patience_s,
        )


class _Calls:
    def __init__(self, inner: CallHistory, patience_s: float) -> None:
        self._inner = inner
        self._patience_s = patience_s

    async def record(
        self, *, workflow_id: str, step_id: str, attempt: int, fingerprint: str
    ) -> list[str]:
        return await ride_out_outages(
            lambda: self._inner.record(
                workflow_id=workflow_id, step_id=step_id, attempt=attempt, fingerprint=fingerprint
            ),
            what="recording a tool call",
            patience_s=self._patience_s,
        )

    async def first_warning(self, *, workflow_id: str, step_id: str, attempt: int) -> bool:
        return await ride_out_outages(
            lambda: self._inner.first_warning(
                workflow_id=workflow_id, step_id=step_id, attempt=attempt
            ),
            what="recording a loop warning",
            patience_s=self._patience_s,
        )


class _Effects:
    def __init__(self, inner: EffectLedger, patience_s: float) -> None:
        self._inner = inner
        self._patience_s = patience_s

    async def intend(self, *, workflow_id: str, step_id: str, fingerprint: str) -> EffectIntent:
        return await ride_out_outages(
            lambda: self._inner.intend(
                workflow_id=workflow_id, step_id=step_id, fingerprint=fingerprint
            ),
            what="noting a tool call's intent",
            patience_s=self._patience_s,
        )

    async def record(
        self, *, workflow_id: str, step_id: str, fingerprint: str, output: str
    ) -> None:
        await ride_out_outages(
            lambda: self._inner.record(
                workflow_id=workflow_id, step_id=step_id, fingerprint=fingerprint, output=output
            ),
            what="recording a tool call's result",
            patience_s=self._patience_s,
        )
