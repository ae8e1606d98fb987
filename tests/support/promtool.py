"""Running Prometheus's ``promtool`` from tests (Debian's ``prometheus`` package has it).

In CI (``CI=true``) a missing promtool fails the test: the checks it runs are
what keeps the metrics, the alert rules and the dashboard valid, and a skip
there would let them rot unseen. Elsewhere the test is skipped;
``scripts/install-system-deps.sh`` installs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

__all__ = ["PromtoolResult", "promtool", "run_promtool"]

PromtoolResult = subprocess.CompletedProcess[str]


def promtool() -> str:
    """The promtool executable; fails the test in CI when it is missing, skips it elsewhere."""
    found = shutil.which("promtool")
    if found is not None:
        return found
    message = "promtool is missing (apt-get install prometheus; scripts/install-system-deps.sh)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def run_promtool(*args: str, stdin: str | None = None, cwd: Path | None = None) -> PromtoolResult:
    return subprocess.run(
        [promtool(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )
