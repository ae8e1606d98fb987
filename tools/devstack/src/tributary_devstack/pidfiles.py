"""Bookkeeping of what the stack started: one ``<name>.pid`` plus ``<name>.json`` each.

The ``.pid`` file holds only the pid, so ordinary tools (``kill $(cat ...)``)
work on it. The ``.json`` file carries what ``status``/``down``/reuse need:
port, log path, health URL and the process start time, which guards against
signalling an unrelated process that later got the same pid.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Instance names become file names; keep them boring.
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class PidFileError(ValueError):
    """A pid file that cannot be parsed; treated as stale by callers."""


@dataclass(frozen=True, slots=True)
class PidRecord:
    """One process started by the stack."""

    name: str
    pid: int
    kind: str  # "kafka", "redis", "llm" or "service"
    log_path: Path
    port: int | None = None
    health_url: str | None = None
    module: str | None = None
    # Field 22 of /proc/<pid>/stat at spawn time; None where /proc is missing.
    start_ticks: int | None = None
    started_at: float = 0.0
    command: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "name": self.name,
            "pid": self.pid,
            "kind": self.kind,
            "log_path": str(self.log_path),
            "port": self.port,
            "health_url": self.health_url,
            "module": self.module,
            "start_ticks": self.start_ticks,
            "started_at": self.started_at,
            "command": list(self.command),
        }
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> PidRecord:
        try:
            data = json.loads(text)
            return cls(
                name=str(data["name"]),
                pid=int(data["pid"]),
                kind=str(data["kind"]),
                log_path=Path(data["log_path"]),
                port=None if data.get("port") is None else int(data["port"]),
                health_url=data.get("health_url"),
                module=data.get("module"),
                start_ticks=None if data.get("start_ticks") is None else int(data["start_ticks"]),
                started_at=float(data.get("started_at", 0.0)),
                command=tuple(str(part) for part in data.get("command", ())),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise PidFileError(f"unreadable pid record: {exc}") from exc


def validate_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise ValueError(f"invalid component name {name!r}")
    return name


def pid_path(pids_dir: Path, name: str) -> Path:
    return pids_dir / f"{validate_name(name)}.pid"


def meta_path(pids_dir: Path, name: str) -> Path:
    return pids_dir / f"{validate_name(name)}.json"


def _atomic_write(path: Path, text: str) -> None:
    # Write-then-rename so a concurrent reader never sees half a file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_record(pids_dir: Path, record: PidRecord) -> None:
    pids_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write(meta_path(pids_dir, record.name), record.to_json())
    _atomic_write(pid_path(pids_dir, record.name), f"{record.pid}\n")


def read_record(pids_dir: Path, name: str) -> PidRecord | None:
    """The record of ``name``, or None if absent or unreadable (stale)."""
    try:
        text = meta_path(pids_dir, name).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return PidRecord.from_json(text)
    except PidFileError:
        return None


def remove_record(pids_dir: Path, name: str) -> None:
    for path in (pid_path(pids_dir, name), meta_path(pids_dir, name)):
        path.unlink(missing_ok=True)


def list_records(pids_dir: Path) -> list[PidRecord]:
    """All readable records, sorted by name."""
    if not pids_dir.is_dir():
        return []
    records = []
    for path in sorted(pids_dir.glob("*.json")):
        record = read_record(pids_dir, path.stem)
        if record is not None:
            records.append(record)
    return records


def replica_names(records: list[PidRecord], service: str) -> list[str]:
    """Names of the replicas of ``service`` (``<service>-<index>``) present in ``records``."""
    pattern = re.compile(rf"^{re.escape(service)}-(\d+)$")
    return [r.name for r in records if pattern.match(r.name) and r.kind == "service"]


def replica_index(name: str) -> int:
    """The index suffix of ``<service>-<index>``."""
    head, sep, tail = name.rpartition("-")
    if not sep or not head or not tail.isdigit():
        raise ValueError(f"{name!r} is not a replica name")
    return int(tail)
