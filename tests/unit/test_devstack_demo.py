"""``make demo``: one workflow through the stack by ``tributary run``, with the local admin key."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.fake_gateway import ANSWER, KEY, FakeGateway, failed_story
from tributary_devstack.config import StackConfig
from tributary_devstack.demo import DEFAULT_TASK, run_demo


def _config(tmp_path: Path, gateway_url: str = "http://127.0.0.1:8000") -> StackConfig:
    config = StackConfig(run_dir=tmp_path, gateway_port=urlsplit(gateway_url).port or 8000)
    config.admin_key_file.write_text(KEY + "\n")
    return config


def test_the_demo_runs_the_cli_with_the_stack_url_and_key_in_its_environment(
    tmp_path: Path,
) -> None:
    runs: list[tuple[Sequence[str], Mapping[str, str]]] = []

    def run(argv: Sequence[str], env: Mapping[str, str], timeout_s: float) -> int:
        runs.append((argv, env))
        return 1

    said: list[str] = []
    config = _config(tmp_path)
    assert run_demo(config, say=said.append, run=run, environ={"PATH": "/bin"}) == 1
    [(argv, env)] = runs
    assert list(argv[1:]) == ["-m", "tributary_cli", "run", DEFAULT_TASK]
    assert env == {"PATH": "/bin", "TRIBUTARY_URL": config.gateway_url, "TRIBUTARY_API_KEY": KEY}
    assert KEY not in " ".join(argv)  # never on a command line, where ps shows it
    assert f"Using the local admin API key from {config.admin_key_file}." in said
    assert any(f"web inspector: {config.gateway_url}/ui/ " in line for line in said)
    assert said[-1] == "The workflow did not complete."
    assert KEY not in "\n".join(said)


def test_without_a_key_the_demo_says_how_to_get_one(tmp_path: Path) -> None:
    said: list[str] = []
    ran: list[Sequence[str]] = []

    def run(argv: Sequence[str], env: Mapping[str, str], timeout_s: float) -> int:
        ran.append(argv)
        return 0

    config = StackConfig(run_dir=tmp_path)
    assert run_demo(config, say=said.append, run=run) == 2
    assert ran == []
    assert said[-1] == f"No API key in {config.admin_key_file}: 'make up' issues one."


def test_the_demo_follows_a_workflow_to_its_answer_through_the_command(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TRIBUTARY_")}
    completed, failed = FakeGateway(), FakeGateway(story=failed_story())
    with completed.serving() as url:
        assert run_demo(_config(tmp_path, url), say=print, environ=environ) == 0
    with failed.serving() as url:
        assert run_demo(_config(tmp_path, url), say=print, environ=environ) == 1
    out = capfd.readouterr().out
    assert [started["task"] for started in completed.started] == [DEFAULT_TASK]
    assert ANSWER in out
    assert "Error: llm_auth_failed: the model refused the key" in out
    assert "The workflow did not complete." in out
    assert KEY not in out
