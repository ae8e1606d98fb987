"""The in-flight scenario's bound: the bare ``openai`` client holding the same
workflows at once, with no orchestration (``clientbound.StandardWorkflowCalls``).

It runs as a process of its own (``python -m bench.clientinflight``), so that
its RSS is the client's alone, and prints one JSON object: how many workflows
it held at once, how they finished against the critical path, and how much its
RSS grew per in-flight workflow while most were in flight (the figure target
(4) is judged beside). Arrivals are paced as the stack's are.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench import procstat, stats
from bench.clientbound import StandardWorkflowCalls
from bench.driver import STANDARD_TASK

__all__ = ["InFlightSample", "hold", "memory_per_workflow"]


@dataclass(frozen=True, slots=True)
class InFlightSample:
    in_flight: int
    rss_bytes: int


def memory_per_workflow(samples: Sequence[InFlightSample], baseline_rss: int) -> float:
    """RSS growth (KiB) per in-flight workflow at the plateau (``stats.plateau``, as for
    the stack): the largest growth among its samples, divided by the most held."""
    peak, plateau = stats.plateau(samples, lambda s: s.in_flight)
    if peak == 0:
        return math.nan
    growth = max(s.rss_bytes for s in plateau) - baseline_rss
    return growth / peak / 1024


async def hold(
    base_url: str,
    *,
    workflows: int,
    arrival_rate: float,
    critical_path_s: float,
    interval_s: float = 2.0,
) -> dict[str, Any]:
    calls = StandardWorkflowCalls(base_url, max_connections=4 * workflows)
    me = os.getpid()
    before = procstat.sample(me)
    assert before is not None
    samples: list[InFlightSample] = []
    durations: list[float] = []
    errors: Counter[str] = Counter()

    async def one() -> None:
        started = time.monotonic()
        try:
            await calls.workflow(STANDARD_TASK)
        except Exception as exc:
            errors[type(exc).__name__] += 1
        else:
            durations.append(time.monotonic() - started)

    tasks: list[asyncio.Task[None]] = []
    try:
        start = time.monotonic()
        for index in range(workflows):
            await asyncio.sleep(max(0.0, start + index / arrival_rate - time.monotonic()))
            tasks.append(asyncio.create_task(one()))
        while any(not task.done() for task in tasks):
            current = procstat.sample(me)
            assert current is not None
            samples.append(InFlightSample(sum(not t.done() for t in tasks), current.rss_bytes))
            await asyncio.sleep(interval_s)
        after = procstat.sample(me)
        assert after is not None
    finally:
        for task in tasks:
            task.cancel()
        await calls.close()
    return {
        "workflows": workflows,
        "completed": len(durations),
        "errors": sum(errors.values()),
        "errors_by_type": dict(errors),
        "in_flight_max": max((s.in_flight for s in samples), default=0),
        "within_10pct": sum(1 for d in durations if d <= critical_path_s * 1.1),
        "worst_ratio_to_critical_path": max(durations, default=math.nan) / critical_path_s,
        "rss_growth_kib_per_workflow": round(memory_per_workflow(samples, before.rss_bytes), 2),
        "cpu_ms_per_workflow": round((after.cpu_s - before.cpu_s) / workflows * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.clientinflight", description=__doc__)
    parser.add_argument("--base-url", required=True, help="the LLM endpoint, e.g. .../v1")
    parser.add_argument("--workflows", type=int, required=True)
    parser.add_argument("--arrival-rate", type=float, required=True, help="workflows per second")
    parser.add_argument("--critical-path-s", type=float, required=True)
    args = parser.parse_args()
    result = asyncio.run(
        hold(
            args.base_url,
            workflows=args.workflows,
            arrival_rate=args.arrival_rate,
            critical_path_s=args.critical_path_s,
        )
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
