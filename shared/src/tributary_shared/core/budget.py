"""A workflow's budget: limits, reservations and the rules that admit a call.

Every LLM call reserves its worst case first and settles the real usage after.
``BudgetAccount`` is the one statement of the rules; both ledgers apply them
(the Redis one in ``budget.lua``, atomically across replicas; the in-memory
twin by calling these methods), and the contract tests hold both to it.

Admission (``BudgetAccount.admission``), for a call asking ``asked``:

- **admitted** when used + reserved + asked stays within every limit;
- **exhausted** when used + asked alone would pass a limit (the call cannot fit
  even once every other call has settled), or when the budget already is
  exhausted: the workflow is out of budget for good. The first such refusal
  marks the budget exhausted and is announced once (``budget.exhausted``);
- **in flight** otherwise: only other calls' reservations stand in the way.
  The budget is not used up, nothing is marked or announced, and the caller
  may try again once those calls settle (``BudgetExceeded.busy``).

A limit of 0 (None in ``BudgetLimits``) means no limit on that amount. A
workflow whose budget was never opened has no account at all, and reserving
from it is refused (``BudgetNotOpened``): a missing record never means
"unlimited".

Reservations are held under an id until they are settled or expire:

- ``reserve`` first lets every hold whose expiry has passed lapse (its amounts
  are no longer reserved), so a caller that died between reserve and settle
  frees its hold after the expiry instead of leaking it forever;
- ``settle`` replaces the hold with the call's real usage; settling a lapsed
  hold still counts the usage (the call outlived its hold, it did not stop
  costing), and settling a settled or unknown id changes nothing, so settling
  is idempotent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from tributary_shared.core.events import BudgetPolicy

__all__ = [
    "MICRO_USD",
    "Admission",
    "BudgetAccount",
    "BudgetLimits",
    "BudgetState",
    "Hold",
    "Reservation",
]

MICRO_USD = 1_000_000
"""Costs are kept in integer millionths of a dollar, so sums stay exact."""


class Admission(StrEnum):
    """What the rules answer a call that asks for a reservation."""

    ADMITTED = "admitted"
    IN_FLIGHT = "in_flight"
    """Refused for now: only other calls' reservations stand in the way."""
    EXHAUSTED = "exhausted"
    """Refused for good: the call cannot fit even alone, or the budget ran out before."""


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    tokens: int | None
    micro_usd: int | None
    policy: BudgetPolicy


@dataclass(frozen=True, slots=True)
class Reservation:
    """A call's admitted worst case, held under ``reservation_id`` until it is settled."""

    reservation_id: str
    tokens: int
    micro_usd: int


@dataclass(frozen=True, slots=True)
class Hold:
    """The amounts a reservation holds, and when they stop counting if never settled."""

    tokens: int
    micro_usd: int
    expires_at: float  # epoch seconds, on the ledger's clock


@dataclass(frozen=True, slots=True)
class BudgetState:
    limit_tokens: int | None
    used_tokens: int
    reserved_tokens: int
    limit_cost_usd: float | None
    used_cost_usd: float
    exhausted: bool
    policy: BudgetPolicy


_NO_HOLDS: Mapping[str, Hold] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class BudgetAccount:
    """The amounts a ledger keeps for one workflow, and the moves the rules allow."""

    limit_tokens: int = 0  # 0: no limit, as the Redis hash stores it
    limit_micro_usd: int = 0
    policy: BudgetPolicy = "partial"
    used_tokens: int = 0
    reserved_tokens: int = 0
    used_micro_usd: int = 0
    reserved_micro_usd: int = 0
    exhausted: bool = False
    holds: Mapping[str, Hold] = field(default_factory=lambda: _NO_HOLDS)
    """Reservations held now, by id; ``reserved_*`` are their sums."""
    lapsed: frozenset[str] = frozenset()
    """Reservations whose hold expired before they were settled."""
    settled: frozenset[str] = frozenset()

    @classmethod
    def opened(cls, limits: BudgetLimits) -> BudgetAccount:
        return cls(
            limit_tokens=limits.tokens or 0,
            limit_micro_usd=limits.micro_usd or 0,
            policy=limits.policy,
        )

    def _within_limits(self, *, tokens: int, micro_usd: int) -> bool:
        """True when ``tokens`` and ``micro_usd`` more than is used stay within the limits."""
        over_tokens = self.limit_tokens > 0 and self.used_tokens + tokens > self.limit_tokens
        over_cost = (
            self.limit_micro_usd > 0 and self.used_micro_usd + micro_usd > self.limit_micro_usd
        )
        return not (over_tokens or over_cost)

    def admission(self, *, tokens: int, micro_usd: int) -> Admission:
        if self._within_limits(
            tokens=self.reserved_tokens + tokens, micro_usd=self.reserved_micro_usd + micro_usd
        ):
            return Admission.ADMITTED
        if self.exhausted or not self._within_limits(tokens=tokens, micro_usd=micro_usd):
            return Admission.EXHAUSTED
        return Admission.IN_FLIGHT

    def admits(self, *, tokens: int, micro_usd: int) -> bool:
        return self.admission(tokens=tokens, micro_usd=micro_usd) is Admission.ADMITTED

    def lapse_expired(self, now: float) -> BudgetAccount:
        """Release every hold whose expiry is at or before ``now``."""
        expired = {rid: hold for rid, hold in self.holds.items() if hold.expires_at <= now}
        if not expired:
            return self
        return dataclasses.replace(
            self,
            holds=MappingProxyType({r: h for r, h in self.holds.items() if r not in expired}),
            reserved_tokens=self.reserved_tokens - sum(h.tokens for h in expired.values()),
            reserved_micro_usd=self.reserved_micro_usd - sum(h.micro_usd for h in expired.values()),
            lapsed=self.lapsed | frozenset(expired),
        )

    def reserve(
        self, reservation: Reservation, *, now: float, expires_at: float
    ) -> tuple[BudgetAccount, Admission]:
        """Lapse expired holds, then hold ``reservation`` if the rules admit it.

        A refusal for good marks the account exhausted; the caller announces it
        when the account was not exhausted before.
        """
        account = self.lapse_expired(now)
        admission = account.admission(tokens=reservation.tokens, micro_usd=reservation.micro_usd)
        if admission is Admission.EXHAUSTED:
            return dataclasses.replace(account, exhausted=True), admission
        if admission is Admission.IN_FLIGHT:
            return account, admission
        hold = Hold(
            tokens=reservation.tokens, micro_usd=reservation.micro_usd, expires_at=expires_at
        )
        return dataclasses.replace(
            account,
            holds=MappingProxyType({**account.holds, reservation.reservation_id: hold}),
            reserved_tokens=account.reserved_tokens + reservation.tokens,
            reserved_micro_usd=account.reserved_micro_usd + reservation.micro_usd,
        ), admission

    def settle(self, reservation_id: str, *, tokens: int, micro_usd: int) -> BudgetAccount:
        """Replace the reservation's hold by the real usage; a second settle changes nothing."""
        hold = self.holds.get(reservation_id)
        if hold is not None:
            return dataclasses.replace(
                self,
                holds=MappingProxyType(
                    {r: h for r, h in self.holds.items() if r != reservation_id}
                ),
                reserved_tokens=self.reserved_tokens - hold.tokens,
                reserved_micro_usd=self.reserved_micro_usd - hold.micro_usd,
                used_tokens=self.used_tokens + tokens,
                used_micro_usd=self.used_micro_usd + micro_usd,
                settled=self.settled | {reservation_id},
            )
        if reservation_id in self.lapsed:
            return dataclasses.replace(
                self,
                used_tokens=self.used_tokens + tokens,
                used_micro_usd=self.used_micro_usd + micro_usd,
                lapsed=self.lapsed - {reservation_id},
                settled=self.settled | {reservation_id},
            )
        return self  # settled already, or never held

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
