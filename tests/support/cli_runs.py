"""The ``tributary`` command run as an operator runs it: a process, with the stack's settings."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass

from tributary_devstack.infra import infra_env, without_owned
from tributary_devstack.stack import Stack

NO_REDIS = "redis://127.0.0.1:1/0"
"""Nothing listens there: a command that touched Redis would fail."""
NO_KAFKA = "127.0.0.1:1"
"""Nor there: a command that touched Kafka would fail."""


@dataclass
class Finished:
    status: int
    stdout: str
    stderr: str


def cli_env(stack: Stack, **overrides: str) -> dict[str, str]:
    """The stack's Kafka settings, and a Redis where nothing listens."""
    kafka = {k: v for k, v in infra_env(stack.config).items() if k.startswith("TRIBUTARY_KAFKA")}
    return {
        **without_owned(os.environ),
        **kafka,
        "TRIBUTARY_KAFKA_BOOTSTRAP_SERVERS": stack.config.kafka_bootstrap,
        "TRIBUTARY_REDIS_URL": NO_REDIS,
        **overrides,
    }


async def tributary(env: dict[str, str], *argv: str, timeout_s: float = 120) -> Finished:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tributary_cli",
        *argv,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=timeout_s)
    assert process.returncode is not None
    return Finished(process.returncode, stdout.decode(), stderr.decode())
