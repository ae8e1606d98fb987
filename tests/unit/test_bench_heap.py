"""Heap snapshots of running services for the in-flight scenario (bench/heap.py and its
start-up hook), tried on a real child process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from bench import heap, report

# A stand-in service: ready once it prints, then holds 2,000 blocks of ~1 KiB from
# SIGUSR1 on (the hook traces from then), and waits to be snapshot and stopped.
CHILD = """
import os, signal, sys, time
held = []
def hold(signum, frame):
    previous(signum, frame)
    held.extend(bytearray(1000) for _ in range(2000))
previous = signal.getsignal(signal.SIGUSR1)
signal.signal(signal.SIGUSR1, hold)
print("ready", flush=True)
time.sleep(60)
"""


def test_packages_are_named_by_project_package_library_or_stdlib_module() -> None:
    assert heap.package_of("/x/services/agent-runner/src/tributary_agent_runner/loop.py") == (
        "tributary_agent_runner"
    )
    assert heap.package_of("/v/lib/python3.11/site-packages/httpcore2/_models.py") == "httpcore2"
    assert heap.package_of("/usr/lib/python3.11/asyncio/locks.py") == "asyncio"
    assert heap.package_of("<frozen abc>") == "other"


def test_a_process_started_with_the_hook_reports_what_it_allocated_after_start(
    tmp_path: Path,
) -> None:
    env = heap.environment(tmp_path / "heaps", {"PYTHONPATH": "/elsewhere"})
    assert env["PYTHONPATH"].split(":") == [str(heap.HOOK_DIR), "/elsewhere"]
    with subprocess.Popen(
        [sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, text=True
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
            heap.start({"svc": child.pid})
            time.sleep(0.5)
            snaps = heap.snapshot({"svc": child.pid}, tmp_path / "heaps", timeout_s=30)
        finally:
            child.kill()

    summary = heap.summarise(snaps["svc"], held=2)
    # 2,000 x ~1 KiB over 2 "workflows": about 1,000 KiB each, all of it from the child.
    assert 950 < summary["traced_kib_per_workflow"] < 1200
    top = summary["top_sites_kib_per_workflow"][0]
    assert top["site"].startswith("<string>")
    assert top["kib"] > 950


def test_the_report_judges_the_targets_on_the_newest_run_without_heap_tracing(
    tmp_path: Path,
) -> None:
    traced = json.dumps({"tuning": {heap.DIR_VARIABLE: "/x"}})
    (tmp_path / "inflight-20261130T100000Z.json").write_text('{"in_flight_max": 2000}')
    (tmp_path / "inflight-20261130T110000Z.json").write_text(traced)  # snapshots came
    (tmp_path / "inflight-20261130T120000Z.json").write_text(traced)  # or not
    found = report.latest(tmp_path, "inflight")
    assert found is not None
    assert found["_file"] == "inflight-20261130T100000Z.json"
    assert report.latest(tmp_path, "latency") is None
