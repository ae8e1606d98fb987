"""Spawning, inspecting and stopping OS processes (the only place that signals them).

Inspection is psutil's: a ``psutil.Process`` knows its start time, so a pid
that was recycled by an unrelated process is never mistaken for ours, and
``wait`` collects the exit status of our own children.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import psutil

from tributary_shared.runtime.retry import NotReadyError, poll_until

# Start times are computed from the boot time, which a clock adjustment can
# move by a second between two runs of the CLI; a recycled pid would have to
# start within this margin of ours to pass.
_SAME_START_S = 1.5
_KILL_WAIT_S = 10.0
_POLL_S = 0.05
#: How long an ended child of ours may take to become collectable (see exit_code).
_SETTLE_S = 2.0


class _DetachedPopen(subprocess.Popen[bytes]):
    """A child meant to outlive its handle (the stack keeps running).

    ``Popen.__del__`` would warn (ResourceWarning, an error under pytest) about
    a running child and queue it for reaping behind psutil's back; the exit
    status is collected by :func:`exit_code` or :func:`stop` instead.
    """

    def __del__(self) -> None:
        return None


def spawn(
    command: Sequence[str], *, log_path: Path, env: Mapping[str, str], cwd: Path
) -> psutil.Process:
    """Start ``command`` detached from our terminal, output appended to ``log_path``.

    A new session means Ctrl-C in the shell that ran ``up`` does not reach the
    stack, and the processes outlive the CLI.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"\n===== {stamp} starting: {shlex.join(command)}\n".encode())
        log.flush()
        child = _DetachedPopen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
    return psutil.Process(child.pid)


def is_running(process: psutil.Process) -> bool:
    """True while ``process`` runs: not exited, not a zombie, its pid not recycled."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def find(pid: int, create_time: float | None) -> psutil.Process | None:
    """The running process ``pid`` if it is the one that started at ``create_time``."""
    try:
        process = psutil.Process(pid)
        if create_time is not None and abs(process.create_time() - create_time) > _SAME_START_S:
            return None
    except (psutil.NoSuchProcess, ValueError):  # ValueError: a negative pid
        return None
    return process if is_running(process) else None


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie waiting to be reaped."""
    return pid > 0 and find(pid, None) is not None


def exit_code(process: psutil.Process) -> int | None:
    """The exit code of an ended child of ours (collecting it); None for other processes.

    A child seen ended may not be collectable yet: its main thread shows as a
    zombie while its other threads are still exiting (a process that calls
    ``os._exit`` with threads running), so our own child gets a moment.
    """
    deadline = time.monotonic() + _SETTLE_S
    while True:
        with contextlib.suppress(psutil.TimeoutExpired):  # its pid went to another process
            code: int | None = process.wait(timeout=0)
            return code
        if not _is_our_child(process) or time.monotonic() > deadline:
            return None
        time.sleep(_POLL_S / 5)


def _is_our_child(process: psutil.Process) -> bool:
    try:
        return process.ppid() == os.getpid()
    except psutil.NoSuchProcess:
        return False


def _tree(process: psutil.Process) -> list[psutil.Process]:
    try:
        return [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return [process]


def send_signal(processes: Iterable[psutil.Process], sig: int) -> None:
    for process in processes:
        # psutil refuses (NoSuchProcess) to signal a pid that now belongs to another process.
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(sig)


def signal_tree(process: psutil.Process, sig: int) -> None:
    """Send ``sig`` to ``process`` and its descendants (workers, MCP servers)."""
    send_signal(_tree(process), sig)


def wait_ended(processes: Sequence[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to ``timeout`` seconds for ``processes`` to end; returns those still running.

    A zombie counts as ended. psutil's own ``wait`` would also wait for init
    to reap an adopted process, which some inits do only every few seconds.
    """
    running = list(processes)

    def all_ended() -> bool:
        running[:] = [process for process in running if is_running(process)]
        return not running

    with contextlib.suppress(NotReadyError):
        poll_until(all_ended, what="processes to end", timeout_s=timeout, interval_s=_POLL_S)
    for process in processes:
        if process not in running:
            exit_code(process)  # collect our own children, so they do not stay zombies
    return running


def wait_exit(process: psutil.Process, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``process`` to end; True if it did."""
    return not wait_ended([process], timeout)


def stop(process: psutil.Process, grace: float) -> None:
    """SIGTERM ``process`` and its descendants, then SIGKILL whatever is left after ``grace``."""
    tree = _tree(process)
    send_signal(tree, signal.SIGTERM)
    alive = wait_ended(tree, grace)
    if alive:
        send_signal(alive, signal.SIGKILL)
        wait_ended(alive, _KILL_WAIT_S)


def run_checked(
    command: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str],
    cwd: Path,
    timeout: float,
    secrets: Sequence[str] = (),
) -> int:
    """Run a short-lived command in the foreground, output appended to ``log_path``.

    The command line is logged with each of ``secrets`` masked.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    shown = shlex.join(command)
    for secret in secrets:
        shown = shown.replace(secret, "***")
    with log_path.open("ab") as log:
        log.write(f"\n===== running: {shown}\n".encode())
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


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True if something accepts connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
