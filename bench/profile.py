"""Sampling profiles of the Python services under load (py-spy, a dev dependency).

py-spy attaches to the running processes (no code change, no restart) and
samples only threads that are on the CPU, so sample counts are proportional to
CPU time. The raw (collapsed) stacks are kept next to the results; the summary
gives, per service, the share of samples whose stack passes through each
library (inclusive, so nested libraries overlap) and the hottest leaf frames.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_FILE = re.compile(r"\(([^()]*?):\d+\)$")
_SITE = re.compile(r"site-packages/([A-Za-z0-9_]+)")
_STDLIB = re.compile(r"/lib/python3\.\d+/([A-Za-z0-9_]+)")
_OWN = re.compile(r"/(tributary_[a-z_]+)/")


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: uv sync --all-packages (it is a dev dependency)")
    return found


def start(pids: Mapping[str, int], out_dir: Path, *, seconds: int, rate: int = 97) -> list[Any]:
    """One ``py-spy record`` per process, in the background; returns the Popen handles."""
    out_dir.mkdir(parents=True, exist_ok=True)
    handles = []
    for name, pid in pids.items():
        command = [
            py_spy(),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(seconds),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--nonblocking",
            "--full-filenames",
            "--output",
            str(out_dir / f"{name}.txt"),
        ]
        log = (out_dir / f"{name}.py-spy.log").open("wb")
        handles.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
    return handles


def wait(handles: list[Any], timeout: float) -> None:
    for handle in handles:
        try:
            handle.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            handle.kill()
            handle.wait()


def library_of(frame: str) -> str | None:
    match = _FILE.search(frame)
    if not match:
        return None
    path = match.group(1)
    for pattern in (_OWN, _SITE, _STDLIB):
        found = pattern.search(path)
        if found:
            return found.group(1)
    return None


def summarise(*paths: Path, top: int = 20) -> dict[str, Any]:
    """Inclusive share per library and self share per leaf frame of raw py-spy files.

    Several files (the replicas of one service) are summarised as one profile.
    """
    total = 0
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    lines = [line for path in paths for line in path.read_text(errors="replace").splitlines()]
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        libraries = {lib for frame in frames if (lib := library_of(frame)) is not None}
        for lib in libraries:
            inclusive[lib] += count
        leaves[_short(frames[-1])] += count
    if total == 0:
        return {"samples": 0}
    return {
        "samples": total,
        "inclusive_share": {k: round(v / total, 3) for k, v in inclusive.most_common(top)},
        "self_share": {k: round(v / total, 3) for k, v in leaves.most_common(top)},
    }


def _short(frame: str) -> str:
    match = _FILE.search(frame)
    if not match:
        return frame
    path = match.group(1)
    name = frame[: match.start()].strip()
    short = path.split("site-packages/")[-1].split("/lib/python3.11/")[-1]
    return f"{name} ({short})"
