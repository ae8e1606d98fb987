"""The in-flight scenario's bound: the bare client holding the same workflows
(bench/clientinflight.py), against a real scripted LLM over HTTP."""

from __future__ import annotations

import asyncio
import math

from bench.clientinflight import InFlightSample, hold, memory_per_workflow

from tributary_scripted_llm import ScriptedLLMServer

KIB = 1024


def test_memory_is_the_plateau_growth_per_workflow_held() -> None:
    samples = [
        InFlightSample(in_flight=10, rss_bytes=1_000 * KIB),
        InFlightSample(in_flight=100, rss_bytes=3_000 * KIB),
        InFlightSample(in_flight=100, rss_bytes=5_000 * KIB),
        # Fewer in flight, more RSS (what the burst left): not the plateau.
        InFlightSample(in_flight=20, rss_bytes=9_000 * KIB),
    ]
    assert memory_per_workflow(samples, baseline_rss=1_000 * KIB) == 40.0


def test_nothing_held_has_no_figure() -> None:
    assert math.isnan(memory_per_workflow([], baseline_rss=0))
    assert math.isnan(memory_per_workflow([InFlightSample(0, KIB)], baseline_rss=0))


async def test_the_bare_client_holds_every_workflow_and_makes_its_eight_calls() -> None:
    workflows = 4
    async with ScriptedLLMServer(latency_ms=300) as llm:
        result = await hold(
            llm.base_url,
            workflows=workflows,
            arrival_rate=100.0,
            critical_path_s=1.2,
            interval_s=0.05,
        )
        arrived = await asyncio.to_thread(llm.admin.requests)

    assert (result["completed"], result["errors"]) == (workflows, 0)
    assert result["in_flight_max"] == workflows
    # The standard workflow: a plan, two calls for each of its three steps, a synthesis.
    assert len(arrived) == 8 * workflows
    assert not math.isnan(result["rss_growth_kib_per_workflow"])
