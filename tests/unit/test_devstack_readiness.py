"""Readiness waits: clear errors naming the component and showing its log."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tributary_devstack.readiness import ComponentStartError, describe_exit, wait_until


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


def test_wait_until_returns_once_the_probe_succeeds() -> None:
    answers = iter([False, False, True])
    wait_until(lambda: next(answers), component="x", timeout=5, log_path=None)


def test_wait_until_fails_fast_when_the_process_died(tmp_path: Path) -> None:
    with pytest.raises(ComponentStartError, match="gateway-0 did not come up: it crashed"):
        wait_until(
            lambda: False,
            component="gateway-0",
            timeout=60,
            log_path=tmp_path / "gateway-0.log",
            exited=lambda: "it crashed",
        )


def test_wait_until_gives_up_at_the_deadline() -> None:
    with pytest.raises(ComponentStartError, match=r"planner-0 did not come up: not ready after 0s"):
        wait_until(lambda: False, component="planner-0", timeout=0.3, log_path=None)


def test_exit_descriptions() -> None:
    assert describe_exit(3) == "its process exited with code 3"
    assert describe_exit(-signal.SIGKILL) == "its process was killed by SIGKILL"
    assert "unknown" in describe_exit(None)
