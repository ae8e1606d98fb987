"""CPU time and resident memory of processes, read from /proc (Linux only)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class ProcSample:
    cpu_s: float  # user + system time of the whole process (all threads)
    rss_bytes: int


def sample(pid: int) -> ProcSample | None:
    """utime + stime and RSS of ``pid``, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        statm = Path(f"/proc/{pid}/statm").read_text(encoding="ascii")
    except OSError:
        return None
    # Field 2 (comm) may hold spaces: split after its closing parenthesis.
    fields = stat[stat.rfind(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 overall
    rss_pages = int(statm.split()[1])
    return ProcSample(cpu_s=(utime + stime) / CLOCK_TICKS, rss_bytes=rss_pages * PAGE_SIZE)


def sample_all(pids: Mapping[str, int]) -> dict[str, ProcSample]:
    out: dict[str, ProcSample] = {}
    for name, pid in pids.items():
        found = sample(pid)
        if found is not None:
            out[name] = found
    return out


def cpu_delta(
    before: Mapping[str, ProcSample], after: Mapping[str, ProcSample]
) -> dict[str, float]:
    return {name: after[name].cpu_s - before[name].cpu_s for name in before.keys() & after.keys()}


def machine_cpu_s() -> float:
    """Busy CPU seconds of the whole machine (all processes, all cores) since boot."""
    first = Path("/proc/stat").read_text(encoding="ascii").splitlines()[0].split()
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return one, five, fifteen
