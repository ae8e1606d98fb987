"""Readiness waits: clear errors naming the component and showing its log."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tributary_devstack import procs
from tributary_devstack.pidfiles import PidRecord
from tributary_devstack.process import ManagedProcess, wait_all_healthy
from tributary_devstack.readiness import ComponentStartError, describe_exit


def test_error_names_the_component_the_log_file_and_its_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "kafka.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    error = ComponentStartError("kafka", "not ready after 5s", log)
    text = str(error)
    assert text.startswith("kafka did not come up: not ready after 5s")
    assert f"log file: {log}" in text
    assert "line 99" in text
    assert "line 59" not in text  # only the tail
    assert error.component == "kafka"


def test_error_without_a_log_file_is_just_the_reason() -> None:
    error = ComponentStartError("redis", "port busy", None)
    assert str(error) == "redis did not come up: port busy"


Start = Callable[..., ManagedProcess]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Starts ``python -c code`` as a component whose health is ``probe``."""
    started: list[ManagedProcess] = []

    def start_component(name: str, code: str, probe: Callable[[], bool]) -> ManagedProcess:
        log_path = tmp_path / f"{name}.log"
        process = procs.spawn(
            [sys.executable, "-c", code], log_path=log_path, env=os.environ, cwd=tmp_path
        )
        record = PidRecord(name=name, pid=process.pid, kind="service", log_path=log_path)
        handle = ManagedProcess(record, tmp_path, probe, process)
        started.append(handle)
        return handle

    yield start_component
    for handle in started:
        handle.terminate(grace=5)


SLEEP = "import time; time.sleep(60)"


def test_the_wait_returns_once_every_probe_succeeds(start: Start) -> None:
    answers = iter([False, False, True])
    slow = start("planner-0", SLEEP, lambda: next(answers))
    quick = start("gateway-0", SLEEP, lambda: True)
    wait_all_healthy([slow, quick], timeout=5)


def test_the_wait_fails_fast_when_a_process_dies(start: Start) -> None:
    crashing = start("gateway-0", "print('bad config'); raise SystemExit(3)", lambda: False)
    with pytest.raises(ComponentStartError) as info:
        wait_all_healthy([crashing], timeout=30)
    assert str(info.value).startswith("gateway-0 did not come up: its process exited with code 3")
    assert "bad config" in info.value.log_tail


def test_the_wait_gives_up_at_the_deadline_naming_who_is_late(start: Start) -> None:
    late = [start(f"planner-{i}", SLEEP, lambda: False) for i in range(2)]
    with pytest.raises(ComponentStartError) as info:
        late[0].wait_healthy(timeout=0.3)
    assert str(info.value).startswith("planner-0 did not come up: not healthy after 0s")
    with pytest.raises(ComponentStartError, match=r"also still waiting for: planner-1"):
        wait_all_healthy(late, timeout=0.3)


def test_exit_descriptions() -> None:
    assert describe_exit(3) == "its process exited with code 3"
    assert describe_exit(-signal.SIGKILL) == "its process was killed by SIGKILL"
    assert "unknown" in describe_exit(None)
