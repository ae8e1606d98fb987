"""What a provider's response says about its rate limits, read from its headers.

OpenAI and compatible providers send, on answers and on 429s alike::

    x-ratelimit-limit-requests: 60        x-ratelimit-limit-tokens: 150000
    x-ratelimit-remaining-requests: 59    x-ratelimit-remaining-tokens: 149984
    x-ratelimit-reset-requests: 1s        x-ratelimit-reset-tokens: 6m0s

``reset`` is the time until the bucket is full again. When ``remaining`` is
missing it is worked out from ``reset`` (a bucket refilling at the limit's
rate that is full after ``reset`` holds ``limit - reset * limit / 60`` now).
A 429 adds ``Retry-After`` (seconds; ``retry-after-ms`` is preferred when
sent). Anything unreadable is ignored: headers refine the limiter, they
never stop a call.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from tributary_shared.core.admission.pacing import RateLimits

__all__ = ["RateLimitObservation", "parse_duration_s", "read_rate_limit_headers"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


@dataclass(frozen=True, slots=True)
class RateLimitObservation:
    """One response's word on the deployment's limits."""

    limits: RateLimits = field(default_factory=RateLimits)
    """The limits it announced (``x-ratelimit-limit-*``)."""
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    retry_after_s: float | None = None

    @property
    def empty(self) -> bool:
        return self == RateLimitObservation()


def parse_duration_s(text: str) -> float | None:
    """Seconds in ``"20ms"``, ``"1s"``, ``"6m0s"``, ``"1h2m3.5s"`` or a plain ``"12.5"``."""
    text = text.strip().lower()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    position, total = 0, 0.0
    for part in _DURATION_PART.finditer(text):
        if part.start() != position:
            return None
        value, unit = float(part.group(1)), part.group(2)
        total += value * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
        position = part.end()
    return total if position == len(text) and position > 0 else None


def read_rate_limit_headers(headers: Mapping[str, str]) -> RateLimitObservation:
    """The observation in ``headers`` (names matched case-insensitively)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    limit_requests = _count(lowered.get("x-ratelimit-limit-requests"))
    limit_tokens = _count(lowered.get("x-ratelimit-limit-tokens"))
    return RateLimitObservation(
        limits=RateLimits(
            requests_per_minute=limit_requests or None, tokens_per_minute=limit_tokens or None
        ),
        remaining_requests=_remaining(lowered, "requests", limit_requests),
        remaining_tokens=_remaining(lowered, "tokens", limit_tokens),
        retry_after_s=_retry_after_s(lowered),
    )


def _count(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        return None
    return number if number >= 0 else None


def _remaining(headers: Mapping[str, str], kind: str, limit: int | None) -> int | None:
    remaining = _count(headers.get(f"x-ratelimit-remaining-{kind}"))
    if remaining is not None:
        return remaining
    reset = headers.get(f"x-ratelimit-reset-{kind}")
    reset_s = parse_duration_s(reset) if reset is not None else None
    if reset_s is None or not limit:
        return None
    return max(0, math.floor(limit - reset_s * limit / 60.0))


def _retry_after_s(headers: Mapping[str, str]) -> float | None:
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        parsed = parse_duration_s(milliseconds)
        if parsed is not None:
            return parsed / 1000.0
    seconds = headers.get("retry-after")
    if seconds is None:
        return None
    try:
        value = float(seconds)
    except ValueError:
        return None  # an HTTP date: rare from model providers, and the backoff covers it
    return value if math.isfinite(value) and value >= 0 else None
