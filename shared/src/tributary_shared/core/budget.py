"""A workflow's budget: limits, reservations and the rule that refuses a call.

Every LLM call reserves its worst case first and settles the real usage after.
``BudgetAccount.admits`` is the rule both ledgers apply (the Redis one in
``budget.lua``, atomically across replicas): a reservation is refused when
used + reserved + asked would pass a limit. A limit of None means no limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from tributary_shared.core.events import BudgetPolicy

__all__ = ["MICRO_USD", "BudgetAccount", "BudgetLimits", "BudgetState", "Reservation"]

MICRO_USD = 1_000_000
"""Costs are kept in integer millionths of a dollar, so sums stay exact."""


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    tokens: int | None
    micro_usd: int | None
    policy: BudgetPolicy


@dataclass(frozen=True, slots=True)
class Reservation:
    tokens: int
    micro_usd: int


@dataclass(frozen=True, slots=True)
class BudgetState:
    limit_tokens: int | None
    used_tokens: int
    reserved_tokens: int
    limit_cost_usd: float | None
    used_cost_usd: float
    exhausted: bool
    policy: BudgetPolicy


@dataclass(frozen=True, slots=True)
class BudgetAccount:
    """The amounts a ledger keeps for one workflow."""

    limit_tokens: int = 0  # 0: no limit, as the Redis hash stores it
    limit_micro_usd: int = 0
    policy: BudgetPolicy = "partial"
    used_tokens: int = 0
    reserved_tokens: int = 0
    used_micro_usd: int = 0
    reserved_micro_usd: int = 0
    exhausted: bool = False

    def admits(self, *, tokens: int, micro_usd: int) -> bool:
        over_tokens = (
            self.limit_tokens > 0
            and self.used_tokens + self.reserved_tokens + tokens > self.limit_tokens
        )
        over_cost = (
            self.limit_micro_usd > 0
            and self.used_micro_usd + self.reserved_micro_usd + micro_usd > self.limit_micro_usd
        )
        return not (over_tokens or over_cost)

    def state(self) -> BudgetState:
        return BudgetState(
            limit_tokens=self.limit_tokens or None,
            used_tokens=self.used_tokens,
            reserved_tokens=self.reserved_tokens,
            limit_cost_usd=self.limit_micro_usd / MICRO_USD if self.limit_micro_usd else None,
            used_cost_usd=self.used_micro_usd / MICRO_USD,
            exhausted=self.exhausted,
            policy=self.policy,
        )
