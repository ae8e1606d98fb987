"""Pure rules of the gateway's quotas: a GCRA rate limit and the running-workflow count.

GCRA (the generic cell rate algorithm) keeps one number per key, its theoretical
arrival time (TAT): each admitted request pushes it ``interval`` further; a
request is admitted while the TAT is at most ``burst`` intervals ahead of now.
``rate_limit.lua`` runs the same arithmetic atomically in Redis; the in-memory
twin runs this function.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tributary_shared.core.status import WorkflowStatus

__all__ = ["RUNNING_GRACE_S", "RateDecision", "counts_as_running", "gcra", "retry_after_header"]

# A workflow admitted to its tenant's running set whose record does not exist yet
# (the gateway is between admitting and creating it) counts this long; after it,
# one that never came to be (its gateway died) stops counting.
RUNNING_GRACE_S = 60.0


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after_s: float  # 0 when allowed
    tat: float  # the key's theoretical arrival time after this decision


def gcra(tat: float | None, now: float, *, per_second: float, burst: int) -> RateDecision:
    """Admit one request at ``now`` given the key's TAT (``None``: never seen)."""
    interval = 1.0 / per_second
    current = now if tat is None else max(tat, now)
    allowed_at = current - (burst - 1) * interval  # ``burst`` requests at once, no more
    if allowed_at > now:
        return RateDecision(allowed=False, retry_after_s=allowed_at - now, tat=current)
    return RateDecision(allowed=True, retry_after_s=0.0, tat=current + interval)


def counts_as_running(status: WorkflowStatus | None, admitted_at: float, now: float) -> bool:
    """Whether a member of a tenant's running set still counts against its ceiling."""
    if status is None:
        return now - admitted_at < RUNNING_GRACE_S
    return not status.terminal


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` in whole seconds, never 0 (a client retrying at once is refused)."""
    return str(max(1, math.ceil(seconds)))
