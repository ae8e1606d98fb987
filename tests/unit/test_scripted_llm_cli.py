"""``python -m tributary_scripted_llm`` serves over a real socket in its own process."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from openai import OpenAI

from tributary_scripted_llm import ScriptedLLMAdmin


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server process exited early"
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("the server did not become healthy")


def test_cli_serves_rules_from_file_and_latency(tmp_path: Path) -> None:
    rules = [{"match": {"contains": "#cli"}, "responses": [{"content": "from the rules file"}]}]
    rules_file = tmp_path / "rules.json"
    rules_file.write_text(json.dumps(rules))
    log = (tmp_path / "server.log").open("wb")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "tributary_scripted_llm",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--latency-ms",
        "50",
        "--rules",
        str(rules_file),
        "--log-level",
        "warning",
    ]
    with log, subprocess.Popen(command, stdout=log, stderr=log) as proc:
        try:
            wait_healthy(url, proc)
            with OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as sdk:
                started = time.monotonic()
                scripted = sdk.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hi #cli"}]
                )
                assert time.monotonic() - started >= 0.05
                auto = sdk.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hi"}]
                )
            assert scripted.choices[0].message.content == "from the rules file"
            assert auto.choices[0].message.content == "Answer: hi"
            with ScriptedLLMAdmin(url) as admin:
                assert admin.config().latency_ms == 50
                assert [r.rule_id for r in admin.requests()] == ["rule-1", None]
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
    assert proc.returncode == 0, (tmp_path / "server.log").read_text()
