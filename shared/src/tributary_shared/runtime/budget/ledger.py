"""The Redis adapter for budgets: reserve before an LLM call, settle after it.

Reservation and the limit check are one Lua script (``budget.lua``, the rules
of ``tributary_shared.core.budget``), so parallel steps on different replicas
cannot together pass the limit: each reserves the worst case (estimated
prompt + the completion cap the call is sent with) under its own id, and the
hold is replaced by the real usage when the call returns. A hold that is
never settled (its process died) lapses ``hold_s`` seconds after it was
taken, on Redis's clock, at the next reservation.
"""

from __future__ import annotations

import uuid
from importlib import resources
from typing import Any

from redis.asyncio import Redis

from tributary_shared.core.budget import BudgetAccount, BudgetLimits, BudgetState, Reservation
from tributary_shared.core.errors import BudgetExceeded, BudgetNotOpened
from tributary_shared.core.events import BudgetExhausted, TokenUsage, derived_event_id
from tributary_shared.core.keys import WorkflowKeys

__all__ = ["RedisBudgetLedger"]

_LUA = resources.files("tributary_shared.runtime.budget").joinpath("budget.lua").read_text()


class RedisBudgetLedger:
    def __init__(self, redis: Redis, *, ttl_s: int) -> None:
        self._redis = redis
        self._ttl_s = ttl_s
        self._script = redis.register_script(_LUA)

    async def _call(self, workflow_id: str, *args: Any) -> Any:
        keys = WorkflowKeys(workflow_id)
        return await self._script(
            keys=[keys.budget, keys.budget_holds, keys.budget_expiries, keys.log], args=list(args)
        )

    async def open(self, workflow_id: str, limits: BudgetLimits) -> None:
        """Set the limits; idempotent (a redelivered request keeps the first ones)."""
        await self._call(
            workflow_id,
            "open",
            limits.tokens or 0,
            limits.micro_usd or 0,
            limits.policy,
            self._ttl_s,
        )

    async def reserve(
        self, workflow_id: str, *, tenant_id: str, tokens: int, micro_usd: int, hold_s: float
    ) -> Reservation:
        """Hold a call's worst case or raise (see ``BudgetLedger.reserve``).

        One round trip: the script fills the budget's figures into the
        announcement itself, so nothing is read beforehand on this hot path.
        """
        reservation = Reservation(
            reservation_id=uuid.uuid4().hex, tokens=tokens, micro_usd=micro_usd
        )
        template = BudgetExhausted(
            event_id=derived_event_id(workflow_id, "budget.exhausted"),
            workflow_id=workflow_id,
            tenant_id=tenant_id,
        )
        result = await self._call(
            workflow_id,
            "reserve",
            reservation.reservation_id,
            tokens,
            micro_usd,
            repr(float(hold_s)),
            self._ttl_s,
            template.model_dump_json(),
            template.event_id,
        )
        verdict = _text(result[0])
        if verdict == "admitted":
            return reservation
        if verdict == "not_opened":
            raise BudgetNotOpened(f"workflow {workflow_id} has no budget: it was never opened")
        if verdict == "in_flight":
            raise BudgetExceeded(
                "other LLM calls of the workflow hold the rest of its budget", busy=True
            )
        raise BudgetExceeded(
            "the workflow's budget cannot cover another LLM call",
            announcement=BudgetExhausted.model_validate_json(result[1])
            if len(result) > 1
            else None,
        )

    async def settle(
        self, workflow_id: str, reservation_id: str, *, usage: TokenUsage, micro_usd: int
    ) -> None:
        await self._call(workflow_id, "settle", reservation_id, usage.total_tokens, micro_usd)

    async def state(self, workflow_id: str) -> BudgetState:
        raw = await self._redis.hgetall(WorkflowKeys(workflow_id).budget)
        fields = {_text(k): _text(v) for k, v in raw.items()}
        return BudgetAccount(
            limit_tokens=int(fields.get("limit_tokens", "0")),
            limit_micro_usd=int(fields.get("limit_micro_usd", "0")),
            policy="fail" if fields.get("policy") == "fail" else "partial",
            used_tokens=int(fields.get("used_tokens", "0")),
            reserved_tokens=int(fields.get("reserved_tokens", "0")),
            used_micro_usd=int(fields.get("used_micro_usd", "0")),
            reserved_micro_usd=int(fields.get("reserved_micro_usd", "0")),
            exhausted=fields.get("exhausted") == "1",
        ).state()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
