"""The test MCP servers of ``tests/fixtures/mcp``, run over HTTP in a subprocess.

Each server binds 127.0.0.1 and prints ``PORT <n>`` once it listens; its own
process, so that it outlives (and is counted apart from) whatever calls it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = [
    "ARITH_SERVER",
    "PAYMENTS_SERVER",
    "PaymentEffects",
    "PaymentRequest",
    "http_fixture_server",
    "payment_effects",
]

FIXTURES = Path(__file__).parents[1] / "fixtures" / "mcp"
ARITH_SERVER = FIXTURES / "arith_server.py"
PAYMENTS_SERVER = FIXTURES / "payments_server.py"


@contextmanager
def http_fixture_server(
    script: Path,
    *args: str,
    port: int = 0,
    env: Mapping[str, str] | None = None,
) -> Iterator[int]:
    """Run ``script`` (with ``args``) on ``port`` (0: a free one); yield the port, stop on exit."""
    proc = subprocess.Popen(
        [sys.executable, str(script), *args, "--port", str(port)],
        stdout=subprocess.PIPE,
        env={**os.environ, **(env or {})},
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("PORT "), f"{script.name} did not start: {line!r}"
        yield int(line.split()[1])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@dataclass(frozen=True)
class PaymentRequest:
    key: str | None
    payment_id: str
    amount: int
    receipt: str | None = None


@dataclass(frozen=True)
class PaymentEffects:
    """What ``payments_server.py`` saw: every request, and every payment it made."""

    requests: list[PaymentRequest]
    payments: list[PaymentRequest]

    def requests_for(self, payment_id: str) -> list[PaymentRequest]:
        return [r for r in self.requests if r.payment_id == payment_id]

    def payments_for(self, payment_id: str) -> list[PaymentRequest]:
        return [p for p in self.payments if p.payment_id == payment_id]


async def payment_effects(port: int) -> PaymentEffects:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"http://127.0.0.1:{port}/effects")
    response.raise_for_status()
    body = response.json()
    return PaymentEffects(
        requests=[PaymentRequest(**r) for r in body["requests"]],
        payments=[PaymentRequest(**p) for p in body["payments"]],
    )
