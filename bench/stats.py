"""Percentiles and summaries (exact, from the full list of samples)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float]) -> dict[str, float]:
    """count, min, p50, p90, p99, max and mean of ``values``."""
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "min": min(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values),
        "mean": sum(values) / len(values),
    }


def plateau(samples: Sequence[T], in_flight: Callable[[T], int]) -> tuple[int, list[T]]:
    """The most workflows held at once, and the samples holding within 1% of it:
    a workflow or two ending early (or failing) must not leave a single sample as
    "the plateau"."""
    peak = max((in_flight(s) for s in samples), default=0)
    return peak, [s for s in samples if in_flight(s) >= 0.99 * peak]


def ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value * 1000:.1f} ms"
