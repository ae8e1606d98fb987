"""The benchmark scenarios. Each starts its own stack, measures, writes a JSON
result under the results directory, prints a summary and stops the stack."""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import clientbound, heap, machine, procstat, profile, stats, timeline
from bench import replicas as replica_plan
from bench.driver import Driver, Monitor, Sample, Watch
from bench.stackctl import BenchPorts, BenchStack
from bench.stats import percentile, summary

DRIVER = "bench-driver"
LLM = "scripted-llm"
WORKERS = ("planner", "agent-runner", "synthesizer")
LLM_CALLS_ON_CRITICAL_PATH = 4  # planner, agent call 1, agent call 2, synthesizer


@dataclass
class Options:
    run_dir: Path
    results_dir: Path
    keep_up: bool = False
    tuning: dict[str, str] = field(default_factory=dict)
    redis_url_query: str = ""
    port_offset: int = 0
    #: Processes per service; ``replica_plan.replica_counts`` fills in the ones not named.
    replicas: dict[str, int] = field(default_factory=replica_plan.replica_counts)

    def stack(self, tuning: Mapping[str, str] | None = None) -> BenchStack:
        return BenchStack(
            self.run_dir,
            ports=BenchPorts().shifted(self.port_offset),
            tuning=self.tuning if tuning is None else tuning,
            redis_url_query=self.redis_url_query,
            replicas=self.replicas,
            say=say,
        )


def header(options: Options, scenario: str) -> dict[str, Any]:
    """The start of every result: what ran, on what, with how many processes per service."""
    return {
        "scenario": scenario,
        "machine": machine.describe(),
        "replicas": replica_plan.replica_counts(options.replicas.items()),
    }


def start(bench: BenchStack, data: dict[str, Any], *, warmup: int = 10) -> None:
    """Start the stack, wait for the consumer groups to share their partitions, preflight."""
    bench.up()
    data["partitions"] = bench.partition_assignment()
    data["preflight"] = preflight(bench, warmup=warmup)


def finish(options: Options, bench: BenchStack, data: dict[str, Any]) -> None:
    """Record the services' warnings, then stop the stack (unless --keep-up)."""
    try:
        data["log_problems"] = bench.log_problems()
        data["log_problems_by_service"] = replica_plan.problems_by_service(data["log_problems"])
        data["redis_url_query"] = options.redis_url_query or None
    finally:
        if not options.keep_up:
            bench.down()


def say(message: str) -> None:
    print(message, flush=True)


def save(options: Options, scenario: str, data: Mapping[str, Any]) -> Path:
    options.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = options.results_dir / f"{scenario}-{stamp}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    say(f"results: {path}")
    return path


# -- resources -------------------------------------------------------------------------


def with_driver(pids: Mapping[str, int]) -> dict[str, int]:
    return {**pids, DRIVER: os.getpid()}


def service_ports(bench: BenchStack) -> dict[str, int]:
    """HTTP port of every replica of every service (their /metrics and /health)."""
    return {
        n: p for n, p in bench.component_ports().items() if replica_plan.service_of(n) is not None
    }


def profile_targets(pids: Mapping[str, int]) -> dict[str, int]:
    """Every Python process to profile: each replica of each service, and the scripted LLM."""
    return {n: p for n, p in pids.items() if replica_plan.service_of(n) is not None or n == LLM}


@dataclass
class CpuWindow:
    """CPU seconds of each process, and of the whole machine, over a window."""

    pids: Mapping[str, int]
    before: dict[str, procstat.ProcSample] = field(default_factory=dict)
    machine_before: float = 0.0
    started: float = 0.0

    def __post_init__(self) -> None:
        self.before = procstat.sample_all(self.pids)
        self.machine_before = procstat.machine_cpu_s()
        self.started = time.monotonic()

    def finish(self, workflows: int) -> dict[str, Any]:
        after = procstat.sample_all(self.pids)
        machine_cpu = procstat.machine_cpu_s() - self.machine_before
        seconds = time.monotonic() - self.started
        delta = procstat.cpu_delta(self.before, after)
        ours = sum(delta.values())
        n = max(workflows, 1)
        stack = replica_plan.stack_total(delta)
        per_service = replica_plan.by_service(delta)
        return {
            "seconds": round(seconds, 3),
            "workflows": workflows,
            "cpu_s": {k: round(v, 3) for k, v in sorted(delta.items())},
            "cpu_ms_per_workflow": {k: round(v / n * 1000, 3) for k, v in sorted(delta.items())},
            "cpu_ms_per_workflow_by_service": {
                k: round(v / n * 1000, 3) for k, v in sorted(per_service.items())
            },
            "stack_cpu_ms_per_workflow": round(stack / n * 1000, 3),
            "all_measured_cpu_ms_per_workflow": round(ours / n * 1000, 3),
            "cores_busy_measured": round(ours / seconds, 3) if seconds else None,
            "cores_busy_machine": round(machine_cpu / seconds, 3) if seconds else None,
            "other_processes_cpu_s": round(machine_cpu - ours, 3),
        }


async def scrape_llm_seconds(ports: Mapping[str, int]) -> dict[str, tuple[float, float]]:
    """(sum, count) of llm_request_seconds per service, all labels together."""
    out: dict[str, tuple[float, float]] = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for name, port in ports.items():
            try:
                text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            except httpx.HTTPError:
                continue
            total = count = 0.0
            for line in text.splitlines():
                if line.startswith("llm_request_seconds_sum{"):
                    total += float(line.rsplit(" ", 1)[1])
                elif line.startswith("llm_request_seconds_count{"):
                    count += float(line.rsplit(" ", 1)[1])
            out[name] = (total, count)
    return out


def llm_seconds_delta(
    before: Mapping[str, tuple[float, float]], after: Mapping[str, tuple[float, float]]
) -> dict[str, Any]:
    """Mean LLM request time as each replica's client saw it over a window, and per service."""
    names = sorted(before.keys() & after.keys())
    totals = {name: after[name][0] - before[name][0] for name in names}
    counts = {name: after[name][1] - before[name][1] for name in names}

    def means(totals: Mapping[str, float], counts: Mapping[str, float]) -> dict[str, Any]:
        return {
            name: {"calls": int(count), "mean_ms": round(totals[name] / count * 1000, 3)}
            for name, count in counts.items()
            if count > 0
        }

    # Replicas by instance name ("agent-runner-1"), then each service's replicas together.
    return {
        **means(totals, counts),
        **means(replica_plan.by_service(totals), replica_plan.by_service(counts)),
    }


# -- workflow figures ------------------------------------------------------------------


def workflow_figures(samples: Sequence[Sample], critical_path_s: float) -> dict[str, Any]:
    completed = [s for s in samples if s.status == "completed"]
    e2e = [v for s in completed if (v := s.e2e()) is not None]
    other = Counter(s.status or "error" for s in samples if s.status != "completed")
    errors = [s.error for s in samples if s.error][:5]
    posts = [s.accepted_mono - s.post_mono for s in samples if s.accepted_mono is not None]
    lag = [s.post_mono - s.scheduled_mono for s in samples if s.post_mono]
    return {
        "started": len(samples),
        "completed": len(completed),
        "not_completed": dict(other),
        "first_errors": errors,
        "critical_path_s": critical_path_s,
        "e2e_s": summary(e2e),
        "overhead_s": summary([v - critical_path_s for v in e2e]),
        "post_s": summary(posts),
        "arrival_lag_s": summary(lag),
    }


def classify_request(request: Mapping[str, Any]) -> str:
    if request.get("response_format") == "tributary_plan":
        return "planner"
    messages = request.get("messages") or []
    has_tool_result = any(m.get("role") == "tool" for m in messages if isinstance(m, dict))
    if request.get("tools"):
        return "agent-after-tool" if has_tool_result else "agent-first"
    return "synthesizer"


# -- preflight: count the LLM calls of one workflow, then warm up ------------------------


def preflight(bench: BenchStack, *, warmup: int = 10) -> dict[str, Any]:
    """One workflow at 0 ms latency with request recording on: verifies the standard
    workload makes 8 LLM calls (1 planner, 3 + 3 agent, 1 synthesizer); then warms up."""
    bench.llm_config(latency_ms=0, max_recorded_requests=1000)
    bench.llm_clear_requests()

    async def one(count: int) -> list[Sample]:
        async with Driver(bench.gateway_urls, bench.redis_url, watch="sse") as driver:
            batch = await driver.open_loop(50.0, count=count, poisson=False)
            await driver.wait(batch, 120)
            return batch

    first = asyncio.run(one(1))
    requests = bench.llm_requests()
    kinds = Counter(classify_request(r) for r in requests)
    bench.llm_config(max_recorded_requests=0)
    warm = asyncio.run(one(warmup)) if warmup else []
    result = {
        "workflow_status": first[0].status,
        "workflow_error": first[0].error,
        "llm_requests": len(requests),
        "by_kind": dict(sorted(kinds.items())),
        "warmup_completed": sum(1 for s in warm if s.status == "completed"),
    }
    say(f"preflight: 1 workflow -> {len(requests)} LLM requests {dict(kinds)}")
    if first[0].status != "completed" or len(requests) != 8:
        raise SystemExit(f"preflight failed: {result}")
    return result


def idle_cpu(pids: Mapping[str, int], seconds: float) -> dict[str, dict[str, float]]:
    """CPU seconds per second each process, and each service's replicas together, use idle."""
    before = procstat.sample_all(pids)
    time.sleep(seconds)
    after = procstat.sample_all(pids)
    delta = procstat.cpu_delta(before, after)
    return {
        "by_process": {k: round(v / seconds, 4) for k, v in sorted(delta.items())},
        "by_service": {
            k: round(v / seconds, 4) for k, v in sorted(replica_plan.by_service(delta).items())
        },
    }


# -- client bound -----------------------------------------------------------------------


def client_bound(
    options: Options, *, concurrencies: Sequence[int], duration_s: float, warmup_s: float
) -> dict[str, Any]:
    """Only the scripted LLM runs; this process makes the 8 calls per workflow."""
    bench = options.stack()
    runs = []
    try:
        bench.up_llm_only()
        bench.llm_config(latency_ms=0, max_recorded_requests=0)
        llm_pid = bench.llm_pid()
        for concurrency in concurrencies:
            result = asyncio.run(
                clientbound.measure(
                    bench.llm_base_url,
                    concurrency=concurrency,
                    duration_s=duration_s,
                    warmup_s=warmup_s,
                    llm_pid=llm_pid,
                )
            )
            row = {"concurrency": concurrency, **clientbound.describe(result)}
            say(
                f"client bound, {concurrency} workflows at a time: "
                f"{row['workflows_per_s']} workflows/s ({row['llm_calls_per_workflow']} calls each)"
            )
            runs.append(row)
    finally:
        if not options.keep_up:
            bench.down()
    best = max(runs, key=lambda r: float(r["workflows_per_s"]))
    return {"runs": runs, "best": best, "workflows_per_s": best["workflows_per_s"]}


def run_client_bound(options: Options, args: Any) -> dict[str, Any]:
    data = {
        "scenario": "client-bound",
        "machine": machine.describe(),
        **client_bound(
            options,
            concurrencies=args.concurrency,
            duration_s=args.duration,
            warmup_s=args.warmup,
        ),
    }
    save(options, "client-bound", data)
    return data


# -- throughput --------------------------------------------------------------------------


async def rate_step(
    bench: BenchStack,
    pids: Mapping[str, int],
    *,
    rate: float,
    duration_s: float,
    drain_s: float,
    watch: Watch,
    seed: int,
) -> dict[str, Any]:
    ports = service_ports(bench)
    async with Driver(bench.gateway_urls, bench.redis_url, watch=watch) as driver:
        monitor = Monitor(pids, bench.redis_url, lambda: driver.in_flight, interval_s=1.0)
        llm_before = await scrape_llm_seconds(ports)
        window = CpuWindow(pids)
        monitor.start()
        start = time.monotonic()
        batch = await driver.open_loop(rate, duration_s=duration_s, poisson=True, seed=seed)
        arrivals_end = time.monotonic()
        drained = await driver.wait(batch, drain_s)
        end = time.monotonic()
        await monitor.stop()
        completed = [s for s in batch if s.status == "completed"]
        cpu = window.finish(len(completed))
        llm_after = await scrape_llm_seconds(ports)
    figures = workflow_figures(batch, 0.0)
    ends = [s.end_mono for s in completed if s.end_mono is not None]
    in_window = sum(1 for t in ends if t <= arrivals_end)
    third = max(len(batch) // 3, 1)
    early = [v for s in batch[:third] if s.status == "completed" and (v := s.e2e()) is not None]
    late = [v for s in batch[-third:] if s.status == "completed" and (v := s.e2e()) is not None]
    early_p50, late_p50 = percentile(early, 50), percentile(late, 50)
    drain_time = (max(ends) - arrivals_end) if ends else math.nan
    in_flight = [row["in_flight"] for row in monitor.timeline if row["mono"] <= arrivals_end]
    sustained = (
        drained
        and len(completed) == len(batch)
        and late_p50 <= 1.5 * early_p50 + 0.1
        and drain_time <= max(2.0, 5 * early_p50)
    )
    return {
        "offered_rate": rate,
        "arrivals": len(batch),
        "arrival_window_s": round(arrivals_end - start, 3),
        "completed_per_s_during_arrivals": round(in_window / (arrivals_end - start), 3),
        "completed_per_s_overall": round(len(completed) / (end - start), 3),
        "achieved_rate": round(len(completed) / (max(ends) - start), 3) if ends else 0.0,
        "drain_s": round(drain_time, 3),
        "early_p50_s": early_p50,
        "late_p50_s": late_p50,
        "in_flight_max": max(in_flight, default=0),
        "in_flight_mean": round(sum(in_flight) / len(in_flight), 2) if in_flight else 0,
        "sustained": sustained,
        "workflows": figures,
        "cpu": cpu,
        "llm_client_seconds": llm_seconds_delta(llm_before, llm_after),
    }


THROUGHPUT_FRACTION = 0.75
CPU_FACTOR = 2.0


def throughput_targets(
    best: Mapping[str, Any] | None, client: Mapping[str, Any] | None, bound: float | None
) -> dict[str, Any]:
    """The throughput targets: the best sustained rate at least 75% of the LLM-client
    bound, and the stack's CPU per workflow at that rate at most twice the bound
    client's (its process alone; the scripted LLM serves both and counts for neither)."""
    fraction = best["achieved_rate"] / bound if best is not None and bound else None
    client_ms = client["best"]["client_cpu_s_per_workflow"] * 1000 if client is not None else None
    stack_ms = best["cpu"]["stack_cpu_ms_per_workflow"] if best is not None else None
    cpu_ratio = stack_ms / client_ms if stack_ms is not None and client_ms else None
    return {
        "fraction_of_client_bound": None if fraction is None else round(fraction, 3),
        "fraction_met": fraction is not None and fraction >= THROUGHPUT_FRACTION,
        "client_cpu_ms_per_workflow": None if client_ms is None else round(client_ms, 2),
        "stack_cpu_ms_per_workflow": stack_ms,
        "cpu_ratio": None if cpu_ratio is None else round(cpu_ratio, 2),
        "cpu_met": cpu_ratio is not None and cpu_ratio <= CPU_FACTOR,
    }


def run_throughput(options: Options, args: Any) -> dict[str, Any]:
    data = header(options, "throughput")
    bound: float | None = args.client_bound
    if bound is None and not args.skip_client_bound:
        data["client_bound"] = client_bound(
            options, concurrencies=args.bound_concurrency, duration_s=20.0, warmup_s=3.0
        )
        bound = float(data["client_bound"]["workflows_per_s"])
    bench = options.stack()
    try:
        start(bench, data)
        bench.llm_config(latency_ms=0, max_recorded_requests=0)
        pids = with_driver(bench.pids())
        data["pids"] = pids
        idle = idle_cpu(pids, 10.0)
        data["idle_cpu_s_per_s"] = idle["by_process"]
        data["idle_cpu_s_per_s_by_service"] = idle["by_service"]
        rate = args.start_rate or (round(bound * 0.3, 1) if bound else 5.0)
        steps: list[dict[str, Any]] = []
        best: dict[str, Any] | None = None
        failed_rate: float | None = None
        for index in range(args.max_steps):
            say(f"throughput: offering {rate:.2f} workflows/s for {args.step_s:.0f} s ...")
            step = asyncio.run(
                rate_step(
                    bench,
                    pids,
                    rate=rate,
                    duration_s=args.step_s,
                    drain_s=args.drain_s,
                    watch=args.watch,
                    seed=index + 1,
                )
            )
            steps.append(step)
            wf = step["workflows"]
            say(
                f"  completed {wf['completed']}/{wf['started']}, achieved "
                f"{step['achieved_rate']}/s, p50 {wf['e2e_s'].get('p50', math.nan):.3f} s, "
                f"p99 {wf['e2e_s'].get('p99', math.nan):.3f} s, in flight max "
                f"{step['in_flight_max']}, stack CPU "
                f"{step['cpu']['stack_cpu_ms_per_workflow']} ms/wf, "
                f"sustained={step['sustained']}"
            )
            if step["sustained"]:
                if best is None or step["achieved_rate"] > best["achieved_rate"]:
                    best = step
                if failed_rate is None:
                    rate *= args.growth
                else:
                    rate = (step["offered_rate"] + failed_rate) / 2
            else:
                failed_rate = rate
                if best is None:
                    rate /= args.growth
                else:
                    rate = (best["offered_rate"] + failed_rate) / 2
            if (
                failed_rate is not None
                and best is not None
                and failed_rate / best["offered_rate"] <= 1 + args.resolution
            ):
                break
            time.sleep(3.0)
        data["steps"] = steps
        data["sustained"] = best
        if best is not None:
            data["sustained_workflows_per_s"] = best["achieved_rate"]
            if bound:
                data["fraction_of_client_bound"] = round(best["achieved_rate"] / bound, 3)
        data["client_bound_workflows_per_s"] = bound
        data["targets"] = throughput_targets(best, data.get("client_bound"), bound)
    finally:
        finish(options, bench, data)
    data["machine"]["load_average_end"] = os.getloadavg()
    save(options, "throughput", data)
    if best is not None:
        say(
            f"sustained: {best['achieved_rate']} workflows/s"
            + (f" = {data['fraction_of_client_bound']:.0%} of the client bound" if bound else "")
        )
    return data


# -- latency -----------------------------------------------------------------------------


LATENCY_P50_MARGIN_S = 0.040
LATENCY_P99_MARGIN_S = 0.100


def latency_targets(stack: Mapping[str, Any], bare: Mapping[str, Any]) -> dict[str, Any]:
    """The latency targets: the stack's end-to-end p50 within 40 ms and p99 within
    100 ms of the bare client's at the same rate and LLM latency, in the same run.
    The overhead over the critical path (4 x the LLM latency) is kept beside them."""
    overhead, e2e, bare_e2e = stack["overhead_s"], stack["e2e_s"], bare["e2e_s"]
    over_p50 = e2e.get("p50", math.inf) - bare_e2e.get("p50", math.nan)
    over_p99 = e2e.get("p99", math.inf) - bare_e2e.get("p99", math.nan)
    return {
        "p50_overhead_ms": round(overhead.get("p50", math.nan) * 1000, 2),
        "p99_overhead_ms": round(overhead.get("p99", math.nan) * 1000, 2),
        "p50_over_client_ms": round(over_p50 * 1000, 2),
        "p99_over_client_ms": round(over_p99 * 1000, 2),
        "p50_met": over_p50 <= LATENCY_P50_MARGIN_S,
        "p99_met": over_p99 <= LATENCY_P99_MARGIN_S,
    }


def run_latency(options: Options, args: Any) -> dict[str, Any]:
    data = header(options, "latency")
    latency_s = args.latency_ms / 1000
    critical = LLM_CALLS_ON_CRITICAL_PATH * latency_s
    bench = options.stack()
    try:
        start(bench, data)
        bench.llm_config(latency_ms=args.latency_ms, max_recorded_requests=0)
        pids = with_driver(bench.pids())
        ports = service_ports(bench)
        say(
            f"latency: the bare client first, {args.rate}/s for {args.duration:.0f} s "
            "(the stack idles meanwhile) ..."
        )
        bare_e2e, bare_failed = asyncio.run(
            clientbound.open_loop_e2e(
                bench.llm_base_url,
                rate=args.rate,
                duration_s=args.duration,
                poisson=not args.fixed,
                seed=7,
            )
        )
        data["client_bound"] = {
            "completed": len(bare_e2e),
            "failed": bare_failed,
            "e2e_s": summary(bare_e2e),
        }

        async def measure() -> dict[str, Any]:
            async with Driver(bench.gateway_urls, bench.redis_url, watch=args.watch) as driver:
                monitor = Monitor(pids, bench.redis_url, lambda: driver.in_flight)
                llm_before = await scrape_llm_seconds(ports)
                window = CpuWindow(pids)
                monitor.start()
                batch = await driver.open_loop(
                    args.rate, duration_s=args.duration, poisson=not args.fixed, seed=7
                )
                await driver.wait(batch, critical + 60)
                await monitor.stop()
                cpu = window.finish(sum(1 for s in batch if s.status == "completed"))
                llm_after = await scrape_llm_seconds(ports)
            ids = [s.workflow_id for s in batch if s.workflow_id is not None]
            logs = await timeline.read_logs(bench.redis_url, ids)
            in_flight = [row["in_flight"] for row in monitor.timeline]
            return {
                "phases": timeline.breakdown(batch, logs, latency_s),
                "workflows": workflow_figures(batch, critical),
                "cpu": cpu,
                "in_flight_max": max(in_flight, default=0),
                "in_flight_mean": round(sum(in_flight) / max(len(in_flight), 1), 2),
                "llm_client_seconds": llm_seconds_delta(llm_before, llm_after),
            }

        say(
            f"latency: {args.rate}/s for {args.duration:.0f} s at {args.latency_ms} ms per LLM "
            f"call (critical path {critical * 1000:.0f} ms) ..."
        )
        data.update(
            {
                "rate": args.rate,
                "arrivals": "fixed" if args.fixed else "poisson",
                "latency_ms": args.latency_ms,
                "watch": args.watch,
                **asyncio.run(measure()),
            }
        )
    finally:
        finish(options, bench, data)
    data["targets"] = latency_targets(data["workflows"], data["client_bound"])
    data["machine"]["load_average_end"] = os.getloadavg()
    save(options, "latency", data)
    for name, row in data["phases"]["phases"].items():
        say(
            f"  {name:<20} p50 {row.get('p50', math.nan) * 1000:8.1f} ms  "
            f"p99 {row.get('p99', math.nan) * 1000:8.1f} ms  ({row['what']})"
        )
    t = data["targets"]
    say(
        f"overhead p50 {t['p50_overhead_ms']} ms, p99 {t['p99_overhead_ms']} ms "
        f"({data['workflows']['completed']}/{data['workflows']['started']} completed); "
        f"over the bare client: p50 +{t['p50_over_client_ms']} ms, "
        f"p99 +{t['p99_over_client_ms']} ms"
    )
    return data


# -- in flight -----------------------------------------------------------------------------


# 6,000 steps wait on the model at once: every per-process bound on concurrent work
# (records handled, HTTP connections, calls sending and waiting at the admission gate,
# 1,000 each by default) is raised past it, so the scenario measures holding them all.
INFLIGHT_TUNING = {
    "TRIBUTARY_MAX_IN_FLIGHT": "8000",
    "TRIBUTARY_LLM_MAX_CONNECTIONS": "8000",
    "TRIBUTARY_LLM_MAX_SENDING": "8000",
    "TRIBUTARY_LLM_MAX_WAITING": "8000",
    "TRIBUTARY_LLM_TIMEOUT_S": "150",
}


MEMORY_KIB_PER_WORKFLOW = 50.0
"""The memory target: per in-flight workflow, across Redis and every service process."""


def memory_figures(timeline: Sequence[Mapping[str, Any]], baseline: Mapping[str, Any]) -> Any:
    """Memory growth over the baseline while the most workflows were in flight."""
    peak, plateau = stats.plateau(timeline, lambda row: int(row["in_flight"]))
    names = sorted(baseline["rss"])
    rss_growth = {
        n: max(row["rss"].get(n, 0) for row in plateau) - baseline["rss"][n] for n in names
    }
    redis_growth = max(row["redis_used_memory"] for row in plateau) - baseline["redis_used_memory"]
    per = max(peak, 1)
    stack_rss = replica_plan.stack_total(rss_growth)
    service_rss = replica_plan.by_service(rss_growth)
    services_only = sum(v for n, v in service_rss.items() if n in replica_plan.SERVICES)
    return {
        "in_flight": peak,
        "plateau_samples": len(plateau),
        "baseline_rss_mib": {n: round(baseline["rss"][n] / 2**20, 1) for n in names},
        "peak_rss_mib": {
            n: round((baseline["rss"][n] + v) / 2**20, 1) for n, v in rss_growth.items()
        },
        "rss_growth_kib_per_workflow": {n: round(v / per / 1024, 2) for n, v in rss_growth.items()},
        "rss_growth_kib_per_workflow_by_service": {
            n: round(v / per / 1024, 2) for n, v in sorted(service_rss.items())
        },
        "stack_rss_growth_kib_per_workflow": round(stack_rss / per / 1024, 2),
        "redis_baseline_used_memory_mib": round(baseline["redis_used_memory"] / 2**20, 2),
        "redis_peak_used_memory_mib": round(
            (baseline["redis_used_memory"] + redis_growth) / 2**20, 2
        ),
        "redis_used_memory_kib_per_workflow": round(redis_growth / per / 1024, 2),
        # The memory target's measure: what the services' processes grew by (RSS, every
        # replica) plus the data Redis holds for the workflows (used_memory).
        "services_and_redis_kib_per_workflow": round(
            (services_only + redis_growth) / per / 1024, 2
        ),
    }


def consumer_in_flight_by_service(timeline: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Most records each service's replicas held at once, together (unanswered probes left out)."""
    out: dict[str, int] = {}
    for row in timeline:
        answered = {n: v for n, v in row.get("consumer_in_flight", {}).items() if v >= 0}
        for service, value in replica_plan.by_service(answered).items():
            out[service] = max(out.get(service, 0), int(value))
    return dict(sorted(out.items()))


def client_in_flight(
    base_url: str, args: Any, *, critical_path_s: float, tuning: Mapping[str, str]
) -> dict[str, Any]:
    """The bare client holding the same workflows, in a process of its own
    (``bench.clientinflight``) against the stack's scripted LLM, before the stack's run."""
    say(f"inflight: the bare client holds {args.workflows} workflows first ...")
    command = [
        sys.executable,
        "-m",
        "bench.clientinflight",
        f"--base-url={base_url}",
        f"--workflows={args.workflows}",
        f"--arrival-rate={args.arrival_rate}",
        f"--critical-path-s={critical_path_s}",
    ]
    # The client reads the LLM timeout the services are given (past the 60 s per call).
    env = {**os.environ, **{k: v for k, v in tuning.items() if k.startswith("TRIBUTARY_LLM_")}}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    say(
        f"inflight: bare client held {result['in_flight_max']}, completed "
        f"{result['completed']}, within 10%: {result['within_10pct']}, "
        f"{result['rss_growth_kib_per_workflow']} KiB/wf RSS"
    )
    return result


def run_inflight(options: Options, args: Any) -> dict[str, Any]:
    data = header(options, "inflight")
    latency_s = args.latency_ms / 1000
    critical = LLM_CALLS_ON_CRITICAL_PATH * latency_s
    tuning = {**INFLIGHT_TUNING, **options.tuning}
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    profile_dir = options.results_dir / f"inflight-profile-{stamp}"
    heap_dir = options.results_dir / f"inflight-heap-{stamp}"
    if args.heap_at > 0:
        tuning = {**tuning, **heap.environment(heap_dir)}
    data["tuning"] = tuning
    bench = options.stack(tuning)
    try:
        start(bench, data)
        bench.llm_config(latency_ms=args.latency_ms, max_recorded_requests=0)
        if not args.skip_client_bound:
            data["client_bound"] = client_in_flight(
                bench.llm_base_url, args, critical_path_s=critical, tuning=tuning
            )
        pids = with_driver(bench.pids())
        ports = bench.component_ports()
        health = {n: p for n, p in ports.items() if replica_plan.service_of(n) in WORKERS}

        async def measure() -> dict[str, Any]:
            async with Driver(
                bench.gateway_urls, bench.redis_url, watch="redis", poll_s=args.poll_s
            ) as driver:
                monitor = Monitor(
                    pids,
                    bench.redis_url,
                    lambda: driver.in_flight,
                    health_ports=health,
                    interval_s=2.0,
                )
                baseline = await monitor.snapshot()
                window = CpuWindow(pids)
                monitor.start()
                profiling: list[Any] = []
                heaps: dict[str, Any] = {}
                if args.heap_at > 0:
                    services = {n: p for n, p in pids.items() if replica_plan.service_of(n)}
                    heap.start(services)
                    asyncio.get_running_loop().call_later(
                        args.heap_at,
                        lambda: heaps.update(
                            held=driver.in_flight,
                            task=asyncio.create_task(
                                asyncio.to_thread(heap.snapshot, services, heap_dir)
                            ),
                        ),
                    )
                if args.profile_s > 0:
                    targets = profile_targets(pids)
                    asyncio.get_running_loop().call_later(
                        args.profile_at,
                        lambda: profiling.extend(
                            profile.start(targets, profile_dir, seconds=int(args.profile_s))
                        ),
                    )
                batch = await driver.open_loop(
                    args.arrival_rate, count=args.workflows, poisson=False
                )
                say(f"inflight: {len(batch)} workflows sent; waiting for them to end ...")
                await driver.wait(batch, critical * 1.1 + args.grace_s)
                await monitor.stop()
                cpu = window.finish(len(batch))  # per workflow started: some may not finish
                profile.wait(profiling, timeout=args.profile_s + 60)
                snapshots = await heaps["task"] if "task" in heaps else {}
            figures = workflow_figures(batch, critical)
            e2e = [v for s in batch if s.status == "completed" and (v := s.e2e()) is not None]
            figures["within_10pct"] = sum(1 for v in e2e if v <= critical * 1.1)
            figures["worst_ratio_to_critical_path"] = max(e2e, default=math.nan) / critical
            consumer = {
                n: max(row.get("consumer_in_flight", {}).get(n, -1) for row in monitor.timeline)
                for n in health
            }
            consumer_by_service = consumer_in_flight_by_service(monitor.timeline)
            return {
                "workflows": figures,
                "cpu": cpu,
                "in_flight_max": max((r["in_flight"] for r in monitor.timeline), default=0),
                "consumer_in_flight_max": consumer,
                "consumer_in_flight_max_by_service": consumer_by_service,
                "memory": memory_figures(monitor.timeline, baseline),
                **(
                    {
                        "heap": {
                            name: heap.summarise(path, heaps["held"])
                            for name, path in sorted(snapshots.items())
                        },
                        "raw_heaps": str(heap_dir),
                    }
                    if snapshots
                    else {}
                ),
                "timeline": [
                    {
                        "t": round(row["mono"] - baseline["mono"], 1),
                        "in_flight": row["in_flight"],
                        "consumer_in_flight": row.get("consumer_in_flight"),
                        "rss_mib": {n: round(v / 2**20, 1) for n, v in row["rss"].items()},
                        "redis_used_memory_mib": round(row["redis_used_memory"] / 2**20, 2),
                    }
                    for row in monitor.timeline
                ],
            }

        say(
            f"inflight: {args.workflows} workflows at {args.arrival_rate}/s, "
            f"{args.latency_ms} ms per LLM call (critical path {critical:.0f} s) ..."
        )
        data.update(
            {
                "workflows_requested": args.workflows,
                "arrival_rate": args.arrival_rate,
                "latency_ms": args.latency_ms,
                "watch": "redis (status and updated_at of the workflow hash, polled)",
                **asyncio.run(measure()),
            }
        )
    finally:
        finish(options, bench, data)
    if args.profile_s > 0:
        data["profiles"] = {
            path.stem: profile.summarise(path) for path in sorted(profile_dir.glob("*.txt"))
        }
        data["profiles_by_service"] = profiles_by_service(sorted(profile_dir.glob("*.txt")))
        data["raw_profiles"] = str(profile_dir)
    wf = data["workflows"]
    per_workflow = data["memory"]["services_and_redis_kib_per_workflow"]
    data["targets"] = {
        "in_flight_met": data["in_flight_max"] >= args.workflows,
        "all_within_10pct": wf["within_10pct"] == args.workflows,
        "memory_kib_per_workflow": per_workflow,
        "memory_met": per_workflow <= MEMORY_KIB_PER_WORKFLOW,
    }
    if "client_bound" in data:
        bound = data["client_bound"]
        data["targets"]["client_bound_memory_kib_per_workflow"] = bound[
            "rss_growth_kib_per_workflow"
        ]
        data["targets"]["client_bound_within_10pct"] = bound["within_10pct"]
    data["machine"]["load_average_end"] = os.getloadavg()
    save(options, "inflight", data)
    say(
        f"in flight max {data['in_flight_max']}, completed {wf['completed']}/{wf['started']}, "
        f"within 10% of {critical:.0f} s: {wf['within_10pct']}, worst ratio "
        f"{wf['worst_ratio_to_critical_path']:.3f}; memory "
        f"{json.dumps(data['memory']['rss_growth_kib_per_workflow'])} KiB/wf RSS, Redis "
        f"{data['memory']['redis_used_memory_kib_per_workflow']} KiB/wf"
    )
    return data


def profiles_by_service(paths: Sequence[Path]) -> dict[str, Any]:
    """One profile summary per service with several replicas, over all their samples."""
    files = replica_plan.service_replicas(path.stem for path in paths)
    by_stem = {path.stem: path for path in paths}
    return {
        service: profile.summarise(*(by_stem[name] for name in names))
        for service, names in files.items()
        if len(names) > 1
    }


def run_profile(options: Options, args: Any) -> dict[str, Any]:
    """Open-loop load at a fixed rate while py-spy samples every Python service."""
    data = header(options, "profile")
    bench = options.stack()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = options.results_dir / f"profile-{stamp}"
    try:
        start(bench, data)
        bench.llm_config(latency_ms=args.latency_ms, max_recorded_requests=0)
        pids = with_driver(bench.pids())
        targets = profile_targets(pids)
        say(f"profile: {args.rate}/s for {args.duration:.0f} s with py-spy on {sorted(targets)}")
        handles = profile.start(targets, out_dir, seconds=int(args.duration))
        step = asyncio.run(
            rate_step(
                bench,
                pids,
                rate=args.rate,
                duration_s=args.duration,
                drain_s=30.0,
                watch=args.watch,
                seed=11,
            )
        )
        profile.wait(handles, timeout=60)
        data["load"] = step
        data["profiles"] = {
            name: profile.summarise(out_dir / f"{name}.txt")
            for name in targets
            if (out_dir / f"{name}.txt").exists()
        }
        data["profiles_by_service"] = profiles_by_service(sorted(out_dir.glob("*.txt")))
        data["raw_profiles"] = str(out_dir)
    finally:
        finish(options, bench, data)
    save(options, "profile", data)
    for name, summary_ in data["profiles"].items():
        say(f"{name}: {summary_.get('samples')} samples")
        for lib, share in list(summary_.get("inclusive_share", {}).items())[:12]:
            say(f"    {share:6.1%}  {lib}")
    return data


def run_verify(options: Options, _args: Any) -> dict[str, Any]:
    bench = options.stack()
    data = header(options, "verify")
    try:
        start(bench, data, warmup=0)
    finally:
        finish(options, bench, data)
    save(options, "verify", data)
    return data


def run_down(options: Options, _args: Any) -> dict[str, Any]:
    stopped = options.stack().down()
    say("stopped: " + (", ".join(stopped) or "nothing was running"))
    return {"stopped": stopped}
