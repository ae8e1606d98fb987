"""What a service's /metrics serves, produced in a process of its own.

``python -m tests.support.metrics_exposition <module>`` imports the service's
entry module (as its process does, without starting it), gives every labelled
metric one series so that each family shows its samples, and prints the
registry in the Prometheus text format. A process per service: the registry is
global, so one process importing every service would blur what each exports.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.metrics import MetricWrapperBase

__all__ = ["exported_names", "exposition"]

REPO = Path(__file__).resolve().parents[2]


def exposition(module: str) -> str:
    """The /metrics body of the service whose entry module is ``module``."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.metrics_exposition", module],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=True,
    )
    return done.stdout


def exported_names(body: str) -> set[str]:
    """Every metric and sample name a /metrics body declares or carries."""
    names: set[str] = set()
    for line in body.splitlines():
        if line.startswith(("# TYPE ", "# HELP ")):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(line.split("{", 1)[0].split(" ", 1)[0])
    return names


def _fill_and_print(module: str) -> None:
    importlib.import_module(module)
    for collector in list(REGISTRY._collector_to_names):
        labelnames = getattr(collector, "_labelnames", ())
        if isinstance(collector, MetricWrapperBase) and labelnames:
            collector.labels(*(f"example_{name}" for name in labelnames))
    sys.stdout.write(generate_latest(REGISTRY).decode())


if __name__ == "__main__":
    _fill_and_print(sys.argv[1])
