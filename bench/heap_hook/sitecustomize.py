"""Heap snapshots of a service under load, for the bench's ``--heap-at`` (bench/heap.py).

Python imports ``sitecustomize`` at start-up from the path; the bench puts this
directory on the services' ``PYTHONPATH`` only when asked. Nothing is traced
until SIGUSR1 (so start-up and warm-up allocations stay out, and the service
runs at full speed until then); SIGUSR2 writes a snapshot of what is still
allocated to ``$TRIBUTARY_BENCH_HEAP_DIR/<pid>-<n>.snap``.
"""

from __future__ import annotations

import os

_DIR = os.environ.get("TRIBUTARY_BENCH_HEAP_DIR")

if _DIR:
    import gc
    import itertools
    import signal
    import tracemalloc
    from pathlib import Path
    from types import FrameType

    _OUT = Path(_DIR)

    _numbers = itertools.count()

    def _start(_signum: int, _frame: FrameType | None) -> None:
        tracemalloc.start(1)

    def _snapshot(_signum: int, _frame: FrameType | None) -> None:
        gc.collect()  # what is still referenced, not garbage awaiting a cycle collection
        path = _OUT / f"{os.getpid()}-{next(_numbers)}.snap"
        partial = path.with_suffix(".part")
        tracemalloc.take_snapshot().dump(str(partial))
        partial.replace(path)

    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _snapshot)
