"""``logs``: print the tails of component logs, optionally following them."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tributary_devstack.procs import tail


def log_files(logs_dir: Path, component: str | None) -> list[Path]:
    """Log files of ``component`` (a name or a service prefix), or all of them."""
    files = sorted(logs_dir.glob("*.log")) if logs_dir.is_dir() else []
    if component is None:
        return files
    return [f for f in files if f.stem == component or f.stem.startswith(component + "-")]


def show(files: list[Path], lines: int, say: Callable[[str], None]) -> None:
    for path in files:
        say(f"==> {path} <==")
        text = tail(path, lines)
        if text:
            say(text)


def follow(files: list[Path], say: Callable[[str], None], poll_s: float = 0.5) -> None:
    """Print lines appended to ``files`` until interrupted (like ``tail -f``)."""
    offsets = {path: path.stat().st_size if path.exists() else 0 for path in files}
    prefix_width = max((len(p.stem) for p in files), default=0)
    while True:
        for path in files:
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            if size < offsets[path]:  # truncated or replaced
                offsets[path] = 0
            if size == offsets[path]:
                continue
            with path.open("rb") as handle:
                handle.seek(offsets[path])
                chunk = handle.read()
            # Only print whole lines; keep a partial last line for the next round.
            complete, _, _rest = chunk.rpartition(b"\n")
            if not complete and not chunk.endswith(b"\n"):
                continue
            offsets[path] += len(complete) + 1
            for line in complete.decode("utf-8", errors="replace").splitlines():
                say(f"{path.stem:<{prefix_width}} | {line}")
        time.sleep(poll_s)
