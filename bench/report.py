"""``python -m bench.report [results dir]``: Markdown tables from the latest results.

Reads the newest ``<scenario>-*.json`` of each scenario in the results directory
(default ``.run/bench/results``) and prints the targets table and the CPU and
memory breakdowns used in docs/performance.md.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench import heap, replicas
from bench.scenarios import THROUGHPUT_FRACTION
from tributary_devstack.config import find_repo_root

#: Columns of the CPU tables: each service's replicas together, then the other processes.
COMPONENTS = (*replicas.SERVICES, *replicas.INFRA, "scripted-llm", "bench-driver")


def latest(results: Path, scenario: str) -> dict[str, Any] | None:
    """The newest result of a scenario that measured the targets: a run that traced
    the services' heaps (``inflight --heap-at``) is slowed by the tracing, so it is
    passed over, whether or not its snapshots came."""
    for path in sorted(results.glob(f"{scenario}-2*.json"), reverse=True):
        data: dict[str, Any] = json.loads(path.read_text())
        if heap.DIR_VARIABLE in data.get("tuning", {}):
            continue
        data["_file"] = path.name
        return data
    return None


def _f(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def targets(results: Path) -> list[str]:
    rows = ["| Target | Measured | Met |", "| --- | --- | --- |"]
    tp = latest(results, "throughput")
    if tp is not None:
        sustained = [step for step in tp.get("steps", []) if step["sustained"]]
        best: dict[str, Any] = max(sustained, key=lambda s: s["achieved_rate"], default={})
        bound = tp.get("client_bound_workflows_per_s")
        fraction = best["achieved_rate"] / bound if best and bound else None
        rows.append(
            "| (1a) sustained throughput at 0 ms LLM latency >= 75% of the LLM-client bound | "
            f"{_f(best.get('achieved_rate'), 2)} workflows/s sustained vs "
            f"{_f(tp.get('client_bound_workflows_per_s'), 2)} workflows/s bound = "
            f"{_f((fraction or math.nan) * 100, 0)}% | "
            f"{'yes' if fraction is not None and fraction >= THROUGHPUT_FRACTION else 'no'} |"
        )
        t = tp.get("targets")
        if t is not None:
            rows.append(
                "| (1b) stack CPU per workflow <= 2x the bound client's | "
                f"{_f(t['stack_cpu_ms_per_workflow'])} ms vs "
                f"{_f(t['client_cpu_ms_per_workflow'])} ms = {_f(t['cpu_ratio'], 2)}x | "
                f"{'yes' if t['cpu_met'] else 'no'} |"
            )
    lat = latest(results, "latency")
    if lat is not None:
        t = lat["targets"]
        bare = lat.get("client_bound", {}).get("e2e_s", {})
        stack_e2e = lat["workflows"]["e2e_s"]
        rows.append(
            f"| (2a) {lat['latency_ms']} ms per LLM call, {lat['rate']} workflows/s: "
            "end-to-end p50 within 40 ms of the bare client's | "
            f"p50 {_f(stack_e2e.get('p50', math.nan) * 1000, 0)} ms vs "
            f"{_f(bare.get('p50', math.nan) * 1000, 0)} ms: "
            f"+{_f(t.get('p50_over_client_ms'))} ms | {'yes' if t['p50_met'] else 'no'} |"
        )
        rows.append(
            "| (2b) same run: p99 within 100 ms of the bare client's | "
            f"p99 {_f(stack_e2e.get('p99', math.nan) * 1000, 0)} ms vs "
            f"{_f(bare.get('p99', math.nan) * 1000, 0)} ms: "
            f"+{_f(t.get('p99_over_client_ms'))} ms | {'yes' if t['p99_met'] else 'no'} |"
        )
    inf = latest(results, "inflight")
    if inf is not None:
        wf = inf["workflows"]
        rows.append(
            f"| (3) {inf['workflows_requested']} workflows in flight at "
            f"{inf['latency_ms'] // 1000} s per LLM call, each within 10% of "
            f"{_f(wf['critical_path_s'], 0)} s | in flight max {inf['in_flight_max']}; "
            f"completed {wf['completed']}/{wf['started']}, within 10%: {wf['within_10pct']}"
            f"{_bare_in_flight(inf)} | "
            f"{'yes' if inf['targets']['all_within_10pct'] else 'no'} |"
        )
        memory = inf.get("memory", {})
        if "services_and_redis_kib_per_workflow" in memory:
            rows.append(
                "| (4) memory per in-flight workflow <= 50 KiB across Redis and all service "
                f"processes | {_f(memory['services_and_redis_kib_per_workflow'])} KiB "
                f"(Redis {_f(memory['redis_used_memory_kib_per_workflow'])} KiB; services' RSS "
                f"{json.dumps(_services_only(memory))}){_bare_memory(inf)} | "
                f"{'yes' if inf['targets'].get('memory_met') else 'no'} |"
            )
    return rows


def _bare_in_flight(inf: Mapping[str, Any]) -> str:
    bare = inf.get("client_bound")
    if bare is None:
        return ""
    return f" (bare client, same run: {bare['within_10pct']} within 10%)"


def _bare_memory(inf: Mapping[str, Any]) -> str:
    bare = inf.get("client_bound")
    if bare is None:
        return ""
    return f"; bare client, same run: {_f(bare['rss_growth_kib_per_workflow'])} KiB"


def replica_counts(data: Mapping[str, Any]) -> dict[str, int]:
    """Processes per service of a result (results from before replicas ran one of each)."""
    return replicas.replica_counts(dict(data.get("replicas") or {}).items())


def describe_replicas(counts: Mapping[str, int]) -> str:
    return "replicas: " + ", ".join(f"{s}={counts[s]}" for s in replicas.SERVICES)


def _services_only(memory: dict[str, Any]) -> dict[str, float]:
    by_service = memory.get("rss_growth_kib_per_workflow_by_service", {})
    return {name: by_service[name] for name in replicas.SERVICES if name in by_service}


def cpu_table(title: str, cpu: Mapping[str, Any], counts: Mapping[str, int]) -> list[str]:
    """CPU per workflow with each service's replicas added up, and a line per replica
    of every service that ran more than one."""
    per_process: Mapping[str, float] = cpu["cpu_ms_per_workflow"]
    per = replicas.by_service(per_process)
    columns = [c for c in COMPONENTS if c in per]

    def label(column: str) -> str:
        count = counts.get(column, 1)
        return f"{column} ({count} replicas)" if count > 1 else column

    header = "| " + title + " | " + " | ".join(label(c) for c in columns) + " |"
    rule = "| --- " * (1 + len(columns)) + "|"
    row = "| CPU ms / workflow | " + " | ".join(_f(per[c]) for c in columns) + " |"
    lines = [header, rule, row]
    for service, names in replicas.service_replicas(per_process).items():
        if len(names) > 1:
            each = ", ".join(f"{name} {_f(per_process[name])}" for name in names)
            lines.append(f"{service} per replica (CPU ms / workflow): {each}")
    return lines


def main(argv: list[str]) -> int:
    results = Path(argv[0]) if argv else find_repo_root() / ".run" / "bench" / "results"
    print("\n".join(targets(results)))
    for scenario in ("throughput", "latency", "inflight"):
        data = latest(results, scenario)
        if data is None:
            continue
        if scenario == "throughput":
            sustained = [step for step in data.get("steps", []) if step["sustained"]]
            best: dict[str, Any] = max(sustained, key=lambda s: s["achieved_rate"], default={})
            cpu = best.get("cpu")
        else:
            cpu = data["cpu"]
        if cpu:
            print()
            print(f"{scenario} ({data['_file']}):")
            counts = replica_counts(data)
            print(describe_replicas(counts))
            print("\n".join(cpu_table(scenario, cpu, counts)))
            print(
                f"stack (services + Kafka + Redis): {cpu['stack_cpu_ms_per_workflow']} ms/wf; "
                f"machine busy {cpu['cores_busy_machine']} cores, of which other processes "
                f"{cpu['other_processes_cpu_s']} CPU-s over {cpu['seconds']} s"
            )
        if scenario == "inflight" and "memory" in data:
            print(json.dumps(data["memory"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
