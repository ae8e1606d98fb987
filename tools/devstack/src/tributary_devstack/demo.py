"""``python -m tributary_devstack demo``: one workflow through the running stack.

It runs what a user would type, ``tributary run "<task>"``, with the stack's
gateway URL and its local admin key (in the environment, never on the command
line, where ``ps`` would show it). The command draws its live view when the
demo runs on a terminal and prints plain lines otherwise; its exit status is
the demo's: 0 completed, 1 failed or cancelled, 2 the gateway unreachable or
refusing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence

from tributary_devstack.admin_key import read_admin_key
from tributary_devstack.config import StackConfig
from tributary_devstack.llm import resolve_llm

__all__ = ["DEFAULT_TASK", "Runner", "demo_command", "run_demo"]

# Three parts separated by ';': the bundled scripted LLM plans one step per part,
# and a part with arithmetic in it makes its agent call the calculator tool.
DEFAULT_TASK = (
    "Name the longest river of Europe; convert its 3530 km to miles with 3530 * 0.621371; "
    "summarise the findings"
)

Runner = Callable[[Sequence[str], Mapping[str, str], float], int]
"""Runs a command with an environment and a timeout (seconds); its exit status."""


def _subprocess(argv: Sequence[str], env: Mapping[str, str], timeout_s: float) -> int:
    # The child writes straight to this terminal, so its live view works as typed by hand.
    return subprocess.run(list(argv), env=dict(env), timeout=timeout_s, check=False).returncode  # noqa: S603


def demo_command(task: str) -> list[str]:
    return [sys.executable, "-m", "tributary_cli", "run", task]


def run_demo(
    config: StackConfig,
    *,
    task: str | None = None,
    timeout_s: float = 300.0,
    say: Callable[[str], None] = print,
    run: Runner = _subprocess,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run one workflow with ``tributary run``; its exit status (0 if it completed)."""
    llm = resolve_llm(config)
    say(llm.describe())
    key = read_admin_key(config)
    if key is None:
        say(f"No API key in {config.admin_key_file}: 'make up' issues one.")
        return 2
    say(f"Using the local admin API key from {config.admin_key_file}.")
    # The key stays out of what the demo prints; 'make status' shows the signed-in link.
    say(
        f"Watch it in the web inspector: {config.gateway_url}/ui/ "
        "('make status' prints a link that signs in with this key)"
    )
    task = task or DEFAULT_TASK
    say(f"$ TRIBUTARY_URL={config.gateway_url} tributary run {task!r}")
    env = {
        **(os.environ if environ is None else environ),
        "TRIBUTARY_URL": config.gateway_url,
        "TRIBUTARY_API_KEY": key,
    }
    try:
        status = run(demo_command(task), env, timeout_s)
    except subprocess.TimeoutExpired:
        say(f"No end after {timeout_s:.0f} s; the workflow runs on ('tributary list' shows it).")
        return 1
    if status == 2:
        say(f"Is the stack up at {config.gateway_url}? 'make status' shows it.")
    elif status != 0:
        say("The workflow did not complete.")
    return status
