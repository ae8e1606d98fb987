"""A provider's requests-per-minute limit, as OpenAI enforces it: a token bucket.

The bucket holds ``burst`` requests (the minute's limit unless set lower) and
refills evenly over the minute. A request that finds it empty is answered
429 with ``Retry-After`` (whole seconds, rounded up) and ``retry-after-ms``;
every answer carries ``x-ratelimit-limit-requests``,
``x-ratelimit-remaining-requests`` and ``x-ratelimit-reset-requests`` (the
time until the bucket is full), so clients can learn the limit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel

__all__ = ["RATE_LIMITED_RULE_ID", "RateLimitStats", "RequestBucket", "Verdict"]

RATE_LIMITED_RULE_ID = "rate-limited"
"""The ``rule_id`` recorded for requests the limit refused."""


class RateLimitStats(BaseModel):
    """What ``GET /_admin/rate-limit`` reports since the limit was last set."""

    requests_per_minute: int
    """0: no limit."""
    burst: int
    allowed: int
    refused: int


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    headers: dict[str, str]


@dataclass
class RequestBucket:
    requests_per_minute: int
    burst: int
    clock: Callable[[], float] = time.monotonic
    allowed: int = 0
    refused: int = 0
    _tokens: float = field(init=False)
    _at: float = field(init=False)

    def __post_init__(self) -> None:
        self._tokens = float(self.burst)
        self._at = self.clock()

    @property
    def _per_second(self) -> float:
        return self.requests_per_minute / 60.0

    def take(self) -> Verdict:
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self._per_second)
        self._at = now
        allowed = self._tokens >= 1
        if allowed:
            self._tokens -= 1
            self.allowed += 1
        else:
            self.refused += 1
        headers = {
            "x-ratelimit-limit-requests": str(self.requests_per_minute),
            "x-ratelimit-remaining-requests": str(math.floor(self._tokens)),
            "x-ratelimit-reset-requests": f"{(self.burst - self._tokens) / self._per_second:.3f}s",
        }
        if not allowed:
            wait_s = (1 - self._tokens) / self._per_second
            headers["retry-after"] = str(math.ceil(wait_s))
            headers["retry-after-ms"] = str(math.ceil(wait_s * 1000))
        return Verdict(allowed=allowed, headers=headers)

    def stats(self) -> RateLimitStats:
        return RateLimitStats(
            requests_per_minute=self.requests_per_minute,
            burst=self.burst,
            allowed=self.allowed,
            refused=self.refused,
        )
