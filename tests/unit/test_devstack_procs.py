"""Process helpers on real, short-lived child processes (no Kafka or Redis needed)."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import psutil

from tributary_devstack import procs


def sleeper(tmp_path: Path, *, ignore_term: bool = False, child: bool = False) -> psutil.Process:
    """A Python process that sleeps; with ``child``, it starts a sleeping child of its own."""
    code = "import signal, subprocess, sys, time\n"
    if ignore_term:
        code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    if child:
        code += "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    code += "print('ready', flush=True)\ntime.sleep(60)\n"
    return procs.spawn(
        [sys.executable, "-c", code],
        log_path=tmp_path / "logs" / "sleeper.log",
        env=os.environ,
        cwd=tmp_path,
    )


def wait_ready(tmp_path: Path, process: psutil.Process) -> None:
    log = tmp_path / "logs" / "sleeper.log"
    deadline = time.monotonic() + 10
    while "ready" not in log.read_text().splitlines():  # handlers and children are set up
        assert procs.is_running(process)
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_spawned_process_gets_its_own_session_and_a_log(tmp_path: Path) -> None:
    process = sleeper(tmp_path)
    try:
        assert os.getsid(process.pid) == process.pid
        assert procs.pid_alive(process.pid)
        assert procs.find(process.pid, process.create_time()) == process
        # A recycled pid (same number, another start time) is not ours.
        assert procs.find(process.pid, process.create_time() - 60) is None
    finally:
        procs.stop(process, grace=5)
    assert procs.exit_code(process) == -signal.SIGTERM
    assert not procs.pid_alive(process.pid)
    assert "starting:" in (tmp_path / "logs" / "sleeper.log").read_text()


def test_stop_escalates_to_sigkill_after_the_grace_period(tmp_path: Path) -> None:
    process = sleeper(tmp_path, ignore_term=True)
    wait_ready(tmp_path, process)
    procs.stop(process, grace=0.5)
    assert procs.exit_code(process) == -signal.SIGKILL


def test_stop_reaches_the_children_too(tmp_path: Path) -> None:
    process = sleeper(tmp_path, child=True)
    wait_ready(tmp_path, process)
    [grandchild] = process.children()
    procs.stop(process, grace=5)
    assert not procs.is_running(grandchild)


def test_a_killed_child_is_reported_ended_with_its_signal(tmp_path: Path) -> None:
    process = sleeper(tmp_path)
    procs.signal_tree(process, signal.SIGKILL)
    assert procs.wait_exit(process, 5)
    assert not procs.is_running(process)
    assert procs.exit_code(process) == -signal.SIGKILL


def test_the_exit_code_of_a_child_whose_threads_outlive_its_main_thread(tmp_path: Path) -> None:
    # The main thread ends first (it shows as a zombie: the process is seen ended) and
    # another thread exits the process a moment later, as os._exit with threads running does.
    program = textwrap.dedent(
        """
        import ctypes, os, platform, threading, time
        threading.Thread(target=lambda: (time.sleep(0.3), os._exit(137))).start()
        time.sleep(0.05)
        ctypes.CDLL(None).syscall({"x86_64": 60, "aarch64": 93}[platform.machine()], 0)
        """
    )
    process = procs.spawn(
        [sys.executable, "-c", program],
        log_path=tmp_path / "threads.log",
        env=dict(os.environ),
        cwd=tmp_path,
    )
    assert procs.wait_exit(process, 10)
    assert procs.exit_code(process) == 137


def test_wait_exit_gives_up_on_a_process_that_keeps_running(tmp_path: Path) -> None:
    process = sleeper(tmp_path)
    try:
        assert not procs.wait_exit(process, 0.1)
    finally:
        procs.stop(process, grace=5)


def test_tail_returns_the_last_lines(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_text("".join(f"line {i}\n" for i in range(100)))
    assert procs.tail(path, 2) == "line 98\nline 99"
    assert procs.tail(tmp_path / "missing.log") == ""


def test_dead_pids_are_not_alive() -> None:
    assert not procs.pid_alive(0)
    assert not procs.pid_alive(-1)
    assert not procs.pid_alive(2**22 + 12345)
