"""Process helpers on real, short-lived child processes (no Kafka or Redis needed)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from tributary_devstack import procs
from tributary_devstack.pidfiles import PidRecord


def sleeper(tmp_path: Path, *, ignore_term: bool = False) -> procs.DetachedPopen:
    code = "import signal, time\n"
    if ignore_term:
        code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    code += "print('ready', flush=True)\ntime.sleep(60)\n"
    popen = procs.spawn(
        [sys.executable, "-c", code],
        log_path=tmp_path / "logs" / "sleeper.log",
        env=os.environ,
        cwd=tmp_path,
    )
    assert isinstance(popen, procs.DetachedPopen)
    return popen


def test_spawned_process_gets_its_own_session_and_a_log(tmp_path: Path) -> None:
    popen = sleeper(tmp_path)
    try:
        assert os.getpgid(popen.pid) == popen.pid
        assert procs.pid_alive(popen.pid)
        ticks = procs.proc_start_ticks(popen.pid)
        assert ticks is not None
        record = PidRecord("sleeper", popen.pid, "service", tmp_path, start_ticks=ticks)
        assert procs.record_alive(record)
        # A recycled pid (same number, other start time) is not ours.
        recycled = PidRecord("sleeper", popen.pid, "service", tmp_path, start_ticks=ticks + 1)
        assert not procs.record_alive(recycled)
    finally:
        procs.stop_pid(popen.pid, grace=5, popen=popen)
    assert popen.returncode == -signal.SIGTERM
    assert "starting:" in (tmp_path / "logs" / "sleeper.log").read_text()


def test_stop_escalates_to_sigkill_after_the_grace_period(tmp_path: Path) -> None:
    popen = sleeper(tmp_path, ignore_term=True)
    log = tmp_path / "logs" / "sleeper.log"
    deadline = time.monotonic() + 10
    while "ready" not in log.read_text().splitlines():  # the handler is installed
        assert popen.poll() is None
        assert time.monotonic() < deadline
        time.sleep(0.02)
    procs.stop_pid(popen.pid, grace=0.5, popen=popen)
    assert popen.returncode == -signal.SIGKILL


def test_killed_child_is_not_reported_alive_once_reaped(tmp_path: Path) -> None:
    popen = sleeper(tmp_path)
    procs.send_signal(popen.pid, signal.SIGKILL)
    assert procs.wait_exit(popen.pid, 5, popen)
    assert not procs.pid_alive(popen.pid)


def test_tail_returns_the_last_lines(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_text("".join(f"line {i}\n" for i in range(100)))
    assert procs.tail(path, 2) == "line 98\nline 99"
    assert procs.tail(tmp_path / "missing.log") == ""


def test_dead_pids_are_not_alive() -> None:
    assert not procs.pid_alive(0)
    assert not procs.pid_alive(2**22 + 12345)
