"""The benchmark's pass/fail verdicts on the performance targets (bench/scenarios.py)."""

from __future__ import annotations

from typing import Any

from bench.scenarios import latency_targets, throughput_targets


def _e2e(p50: float, p99: float) -> dict[str, Any]:
    return {"e2e_s": {"p50": p50, "p99": p99}, "overhead_s": {"p50": p50 - 0.8, "p99": p99 - 0.8}}


def test_latency_is_judged_against_the_bare_client_of_the_same_run() -> None:
    bare = {"e2e_s": {"p50": 0.820, "p99": 0.900}}
    met = latency_targets(_e2e(0.855, 0.995), bare)
    assert (met["p50_met"], met["p99_met"]) == (True, True)
    assert met["p50_over_client_ms"] == 35.0
    slow_tail = latency_targets(_e2e(0.855, 1.010), bare)
    assert (slow_tail["p50_met"], slow_tail["p99_met"]) == (True, False)
    slow = latency_targets(_e2e(0.870, 0.990), bare)
    assert slow["p50_met"] is False


def test_latency_without_a_bare_client_measurement_is_not_met() -> None:
    missing = latency_targets(_e2e(0.81, 0.82), {"e2e_s": {}})
    assert (missing["p50_met"], missing["p99_met"]) == (False, False)


def _step(rate: float, stack_ms: float) -> dict[str, Any]:
    return {"achieved_rate": rate, "cpu": {"stack_cpu_ms_per_workflow": stack_ms}}


def test_throughput_needs_three_quarters_of_the_bound_and_at_most_twice_its_cpu() -> None:
    client = {"best": {"client_cpu_s_per_workflow": 0.015}}
    met = throughput_targets(_step(45.0, 30.0), client, 60.0)
    assert (met["fraction_met"], met["cpu_met"]) == (True, True)
    assert met["cpu_ratio"] == 2.0
    missed = throughput_targets(_step(15.0, 104.0), client, 60.0)
    assert (missed["fraction_met"], missed["cpu_met"]) == (False, False)
    assert missed["fraction_of_client_bound"] == 0.25


def test_throughput_with_nothing_sustained_is_not_met() -> None:
    verdict = throughput_targets(None, None, 60.0)
    assert (verdict["fraction_met"], verdict["cpu_met"]) == (False, False)
