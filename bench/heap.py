"""Where a service's memory goes while workflows are held: ``tracemalloc`` in the
running services, started and read by signals (``heap_hook/sitecustomize.py``).

``environment`` puts the hook on the services' path; ``start`` turns tracing on
in each process just before the load (so only what the load allocates is
traced); ``snapshot`` asks each for a snapshot of what is still allocated; and
``summarise`` groups a snapshot by package and by allocation site, in KiB per
held workflow. Tracing slows a process down by about half: the timing figures
of a run with it are not the targets'.
"""

from __future__ import annotations

import os
import re
import signal
import time
import tracemalloc
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "DIR_VARIABLE",
    "HOOK_DIR",
    "environment",
    "package_of",
    "snapshot",
    "start",
    "summarise",
]

HOOK_DIR = Path(__file__).with_name("heap_hook")
# The hook reads it by this name: it imports no bench code into the services.
DIR_VARIABLE = "TRIBUTARY_BENCH_HEAP_DIR"

_SITE = re.compile(r"site-packages/([A-Za-z0-9_]+)")
_STDLIB = re.compile(r"/lib/python3\.\d+/([A-Za-z0-9_]+)")
_OWN = re.compile(r"/(tributary_[a-z_]+)/")


def environment(out_dir: Path, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """What the services need in their environment for the hook to load."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = [str(HOOK_DIR), *filter(None, [environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(path), DIR_VARIABLE: str(out_dir)}


def start(pids: Mapping[str, int]) -> None:
    for pid in pids.values():
        os.kill(pid, signal.SIGUSR1)


def snapshot(
    pids: Mapping[str, int], out_dir: Path, *, timeout_s: float = 120.0
) -> dict[str, Path]:
    """Ask every process for a snapshot; the newest file of each, once all are written."""
    before = {p.name for p in out_dir.glob("*.snap")}
    for pid in pids.values():
        os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + timeout_s
    found: dict[str, Path] = {}
    while time.monotonic() < deadline and len(found) < len(pids):
        for name, pid in pids.items():
            fresh = sorted(
                (p for p in out_dir.glob(f"{pid}-*.snap") if p.name not in before),
                key=lambda p: p.stat().st_mtime,
            )
            if fresh:
                found[name] = fresh[-1]
        time.sleep(0.5)
    return found


def package_of(filename: str) -> str:
    """The library, stdlib module or project package a source file belongs to."""
    for pattern in (_OWN, _SITE, _STDLIB):
        match = pattern.search(filename)
        if match:
            return match.group(1)
    return "other"


def summarise(path: Path, held: int, *, top: int = 20) -> dict[str, Any]:
    """What is allocated (traced since ``start``), in KiB per held workflow: in all, by
    package, and at the largest allocation sites."""
    snap = tracemalloc.Snapshot.load(str(path)).filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    per = max(held, 1) * 1024
    sites = snap.statistics("lineno")
    by_package: Counter[str] = Counter()
    for stat in sites:
        by_package[package_of(stat.traceback[0].filename)] += stat.size
    total = sum(by_package.values())
    return {
        "held_workflows": held,
        "traced_kib_per_workflow": round(total / per, 2),
        "by_package_kib_per_workflow": {
            name: round(size / per, 2)
            for name, size in by_package.most_common()
            if size >= per / 100
        },
        "top_sites_kib_per_workflow": [
            {
                "site": f"{_short(stat.traceback[0].filename)}:{stat.traceback[0].lineno}",
                "kib": round(stat.size / per, 2),
                "blocks": round(stat.count / max(held, 1), 1),
            }
            for stat in sites[:top]
        ],
    }


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename
