"""Bookkeeping of what the stack started: one ``<name>.pid`` plus ``<name>.json`` each.

The ``.pid`` file holds only the pid, so ordinary tools (``kill $(cat ...)``)
work on it. The ``.json`` file carries what ``status``/``down``/reuse need:
port, log path, health URL and the process start time, which guards against
signalling an unrelated process that later got the same pid.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

# Instance names become file names; keep them boring.
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class PidRecord(BaseModel):
    """One process started by the stack."""

    # Unknown keys are ignored, so records written by an older version still read.
    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    pid: int
    kind: str  # "kafka", "redis", "llm" or "service"
    log_path: Path
    port: int | None = None
    health_url: str | None = None
    module: str | None = None
    # psutil's start time of the process (seconds since the epoch); None in
    # records of older versions, whose processes are then known by pid alone.
    create_time: float | None = None
    started_at: float = 0.0
    command: tuple[str, ...] = ()

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> PidRecord | None:
        """The record in ``text``, or None if it cannot be parsed (a stale file)."""
        try:
            return cls.model_validate_json(text)
        except ValidationError:
            return None


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
    return PidRecord.from_json(text)


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
