"""Spawning, probing and stopping OS processes (the only place that signals pids)."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tributary_devstack.pidfiles import PidRecord

_POLL_S = 0.1


def proc_start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None without /proc.

    Together with the pid it identifies a process uniquely, so a recycled pid
    is never mistaken for a process we started.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after it.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 overall; fields[0] is field 3
    except (IndexError, ValueError):
        return None


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].startswith("Z")


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie waiting to be reaped."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return not _is_zombie(pid)


def record_alive(record: PidRecord) -> bool:
    """True if the process of ``record`` is still the one we started."""
    if not pid_alive(record.pid):
        return False
    if record.start_ticks is None:
        return True
    return proc_start_ticks(record.pid) == record.start_ticks


def _no_warning(*_args: object, **_kwargs: object) -> None:
    return None


class DetachedPopen(subprocess.Popen[bytes]):
    """A child that is meant to outlive its handle (the stack keeps running).

    CPython's ``Popen.__del__`` warns (ResourceWarning) when a handle of a
    running child is collected, and queues the child for reaping. The reaping
    is kept; the warning is dropped, since pytest turns warnings into errors
    and a stack left running for reuse is intended.
    """

    def __del__(self) -> None:
        super().__del__(_warn=_no_warning)  # type: ignore[call-arg]


def spawn(
    command: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str],
    cwd: Path,
) -> subprocess.Popen[bytes]:
    """Start ``command`` detached from our terminal, output appended to ``log_path``.

    A new session means Ctrl-C in the shell that ran ``up`` does not reach the
    stack, the processes outlive the CLI, and the pid doubles as a process
    group id so stopping also reaches any grandchildren.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"\n===== {stamp} starting: {shlex.join(command)}\n".encode())
        log.flush()
        return DetachedPopen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )


def send_signal(pid: int, sig: int) -> None:
    """Signal ``pid`` and, when it leads its own process group, the whole group."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def wait_exit(pid: int, timeout: float, popen: subprocess.Popen[bytes] | None = None) -> bool:
    """Wait up to ``timeout`` seconds for ``pid`` to exit; True if it did.

    When we hold the Popen we reap the child through it, otherwise a killed
    child would linger as a zombie and look alive.
    """
    deadline = time.monotonic() + timeout
    while True:
        if popen is not None:
            if popen.poll() is not None:
                return True
        elif not pid_alive(pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)


def stop_pid(pid: int, grace: float, popen: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM, then SIGKILL if ``pid`` is still there after ``grace`` seconds."""
    send_signal(pid, signal.SIGTERM)
    if wait_exit(pid, grace, popen):
        return
    send_signal(pid, signal.SIGKILL)
    wait_exit(pid, 10.0, popen)


def run_checked(
    command: Sequence[str], *, log_path: Path, env: Mapping[str, str], cwd: Path, timeout: float
) -> int:
    """Run a short-lived command in the foreground, output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"\n===== running: {shlex.join(command)}\n".encode())
        log.flush()
        completed = subprocess.run(  # noqa: S603 - argv list built by this package
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            timeout=timeout,
            check=False,
        )
    return completed.returncode


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file (empty if it does not exist)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", errors="replace").splitlines()[-lines:])


def reap_quietly(popen: subprocess.Popen[bytes]) -> None:
    """Collect an exited child's status so it neither stays a zombie nor warns."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        popen.wait(timeout=0)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True if something accepts connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
