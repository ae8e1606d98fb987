"""Pacing one deployment's calls within its per-minute limits: GCRA arithmetic.

The generic cell rate algorithm keeps one number per limit, the theoretical
arrival time (``tat``): the moment by which every call admitted so far would
have been "paid for" at the limit's steady rate. A call of ``cost`` units
moves it on by ``cost`` emission intervals (60 s / limit each); it may go
when that leaves the debt ahead of now within the burst allowance. A
whole-minute allowance (``burst_s=60``) lets a minute's limit go out at once,
as a provider's token bucket does; a smaller one spreads calls out evenly.

Requests per minute and tokens per minute are two such limits; a call must
fit both. Its token cost is estimated before it is sent (prompt estimate
plus its completion cap), as providers count it.

Every function here is also written in Lua (``runtime/llm/admission/gate.lua``)
with the same operations in the same order, so both compute the same floats.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RateLimits", "gcra", "pace", "synced_tat"]


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Per-minute limits of one deployment; None means no limit of that kind."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None

    def tightest(self, other: RateLimits) -> RateLimits:
        """Each limit at the lower of the two: a learned limit never loosens a configured one."""
        return RateLimits(
            requests_per_minute=_lower(self.requests_per_minute, other.requests_per_minute),
            tokens_per_minute=_lower(self.tokens_per_minute, other.tokens_per_minute),
        )

    @property
    def unlimited(self) -> bool:
        return self.requests_per_minute is None and self.tokens_per_minute is None


def _lower(first: int | None, second: int | None) -> int | None:
    if first is None:
        return second
    if second is None:
        return first
    return min(first, second)


def gcra(
    tat: float, now: float, cost: float, per_minute: int, burst_s: float
) -> tuple[float, float]:
    """``(new_tat, 0.0)`` when a call of ``cost`` units fits at ``now``, else ``(tat, wait_s)``.

    A call larger than the whole allowance goes once no debt is left, so it
    is delayed, never refused for good.
    """
    interval = 60.0 / per_minute * cost
    allowance = max(burst_s, interval)
    new_tat = max(tat, now) + interval
    wait_s = new_tat - allowance - now
    if wait_s <= 0:
        return new_tat, 0.0
    return tat, wait_s


def pace(
    tats: tuple[float, float], now: float, tokens: int, limits: RateLimits, burst_s: float
) -> tuple[tuple[float, float], float]:
    """Both limits at once: ``(new_tats, 0.0)`` when the call fits both, else ``(tats, wait_s)``.

    ``tats`` is (requests, tokens); a call that does not fit moves neither.
    """
    tat_requests, tat_tokens = tats
    wait_s = 0.0
    if limits.requests_per_minute is not None:
        tat_requests, waits = gcra(tat_requests, now, 1, limits.requests_per_minute, burst_s)
        wait_s = max(wait_s, waits)
    if limits.tokens_per_minute is not None:
        tat_tokens, waits = gcra(tat_tokens, now, tokens, limits.tokens_per_minute, burst_s)
        wait_s = max(wait_s, waits)
    if wait_s > 0:
        return tats, wait_s
    return (tat_requests, tat_tokens), 0.0


def synced_tat(tat: float, now: float, per_minute: int, burst_s: float, remaining: int) -> float:
    """``tat`` moved on so that no more than ``remaining`` units fit now, as the
    provider reported; never moved back (the report may predate calls already
    admitted, which ``tat`` counts and the provider had not seen yet)."""
    return max(tat, now + burst_s - remaining * (60.0 / per_minute))
