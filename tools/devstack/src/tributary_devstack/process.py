"""Handles on running components, whether started now or found from pid files."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil

from tributary_devstack import procs
from tributary_devstack.pidfiles import PidRecord, remove_record
from tributary_devstack.readiness import ComponentStartError, describe_exit, http_ok
from tributary_shared.runtime.retry import NotReadyError, poll_until

_POLL_S = 0.25


def http_probe(url: str | None) -> Callable[[], bool]:
    """A probe that is true while ``GET url`` answers 200 (never true without a URL)."""
    return lambda: url is not None and http_ok(url)


class ManagedProcess:
    """One process of the stack: its pid record, health probe and lifecycle.

    ``process`` is the psutil handle, for a process spawned now or one adopted
    from the pid files of an earlier run.
    """

    def __init__(
        self,
        record: PidRecord,
        pids_dir: Path,
        probe: Callable[[], bool],
        process: psutil.Process,
    ) -> None:
        self.record = record
        self._pids_dir = pids_dir
        self._probe = probe
        self._process = process

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} pid={self.pid} port={self.port}>"

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def pid(self) -> int:
        return self.record.pid

    @property
    def port(self) -> int | None:
        return self.record.port

    @property
    def log_path(self) -> Path:
        return self.record.log_path

    def exit_reason(self) -> str | None:
        """None while the process runs, else how it ended (for error messages)."""
        if procs.is_running(self._process):
            return None
        return describe_exit(procs.exit_code(self._process))

    def is_alive(self) -> bool:
        return procs.is_running(self._process)

    def is_healthy(self) -> bool:
        return self.is_alive() and self._probe()

    def wait_healthy(self, timeout: float) -> None:
        """Block until healthy; raises ``ComponentStartError`` with the log tail."""
        wait_all_healthy([self], timeout)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (default SIGKILL) without waiting or forgetting the process.

        Meant for crash tests; the pid files stay so ``down`` still cleans up.
        """
        if self.is_alive():
            procs.signal_tree(self._process, sig)

    def wait_exit(self, timeout: float) -> bool:
        return procs.wait_exit(self._process, timeout)

    def terminate(self, grace: float = 15.0) -> None:
        """SIGTERM, SIGKILL after ``grace`` seconds, then remove the pid files."""
        if self.is_alive():
            procs.stop(self._process, grace)
        else:
            procs.exit_code(self._process)  # collect a child that already ended
        remove_record(self._pids_dir, self.name)


class ServiceProcess(ManagedProcess):
    """A Tributary service (or the scripted LLM) answering HTTP on ``port``."""

    @classmethod
    def from_record(
        cls, record: PidRecord, pids_dir: Path, process: psutil.Process
    ) -> ServiceProcess:
        return cls(record, pids_dir, http_probe(record.health_url), process)

    @property
    def instance(self) -> str:
        return self.name

    @property
    def url(self) -> str:
        """Base URL of the service's HTTP server."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def health_url(self) -> str | None:
        return self.record.health_url


def new_record(
    *,
    name: str,
    kind: str,
    process: psutil.Process,
    command: list[str],
    log_path: Path,
    port: int | None,
    health_url: str | None = None,
    module: str | None = None,
) -> PidRecord:
    """The pid record of a just-spawned process."""
    return PidRecord(
        name=name,
        pid=process.pid,
        kind=kind,
        log_path=log_path,
        port=port,
        health_url=health_url,
        module=module,
        create_time=process.create_time(),
        started_at=time.time(),
        command=tuple(command),
    )


def wait_all_healthy(processes: Sequence[ManagedProcess], timeout: float) -> None:
    """Wait for several components at once under one deadline.

    Starting everything first and then waiting in parallel makes ``up`` take
    as long as the slowest component rather than the sum of all of them. A
    component whose process ends fails the wait at once, with its log tail.
    """
    pending = list(processes)

    def all_healthy() -> bool:
        for proc in list(pending):
            if proc.is_healthy():
                pending.remove(proc)
                continue
            reason = proc.exit_reason()
            if reason is not None:
                raise ComponentStartError(proc.name, reason, proc.log_path)
        return not pending

    try:
        poll_until(all_healthy, what="components", timeout_s=timeout, interval_s=_POLL_S)
    except NotReadyError:
        first, others = pending[0], [p.name for p in pending[1:]]
        reason = f"not healthy after {timeout:.0f}s"
        if others:
            reason += f" (also still waiting for: {', '.join(others)})"
        raise ComponentStartError(first.name, reason, first.log_path) from None
