"""When a stream reconnects: bounded tries with exponential backoff, Retry-After first."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a stream rides out dropped connections and 429/5xx answers.

    ``max_retries`` counts reconnections in a row that brought no event: one
    that delivers an event starts the count again, so a long stream survives
    any number of drops spread over its life.
    """

    max_retries: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ValueError("retry bounds must not be negative")

    def delay(self, retry: int, *, retry_after: float | None = None) -> float:
        """Seconds to wait before reconnection number ``retry`` (1, 2, ...).

        The server's ``Retry-After`` wins (capped); otherwise exponential
        backoff with jitter, so many clients dropped at once do not return at once.
        """
        if retry_after is not None:
            return min(retry_after, self.max_retry_after_s)
        if retry <= 1:
            return 0.0 if self.backoff_s == 0 else random.uniform(0, self.backoff_s)
        ceiling = min(self.backoff_s * 2 ** (retry - 1), self.max_backoff_s)
        return random.uniform(ceiling / 2, ceiling)
