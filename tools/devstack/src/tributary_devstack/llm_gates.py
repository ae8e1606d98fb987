"""The admission gate of each LLM deployment, as ``make status`` shows it.

Read from Redis (the state every replica shares): the circuit breaker, the
calls waiting for their turn, the limits in force (configured or learned from
the provider's headers) and a 429's pause.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis

from tributary_shared.core.admission import BreakerState, DeploymentState, RateLimits
from tributary_shared.runtime.llm.admission import RedisDeploymentGate

__all__ = ["format_gates", "read_gates"]


async def _read(redis_url: str, options: Mapping[str, Any]) -> list[tuple[str, DeploymentState]]:
    redis = Redis.from_url(redis_url, socket_timeout=2.0, **options)
    try:
        gate = RedisDeploymentGate(redis)
        return [(name, await gate.state(name)) for name in await gate.deployments()]
    finally:
        await redis.aclose()


def read_gates(
    redis_url: str, options: Mapping[str, Any] | None = None
) -> list[tuple[str, DeploymentState]]:
    """Every deployment's gate; none when Redis cannot be read. ``options``: the stack's
    credentials and TLS (``infra.redis_client_options``)."""
    try:
        return asyncio.run(_read(redis_url, options or {}))
    except Exception:
        return []


def format_gates(gates: list[tuple[str, DeploymentState]], *, now: float | None = None) -> str:
    if not gates:
        return "LLM deployments: none used yet"
    moment = time.time() if now is None else now
    width = max(16, *(len(name) for name, _ in gates))
    lines = [f"{'LLM DEPLOYMENT':<{width}} {'BREAKER':<22} {'WAITING':>7}  {'LIMITS':<26} PAUSED"]
    for name, state in gates:
        breaker = state.breaker.value
        if state.breaker is BreakerState.OPEN:
            breaker += f" (probe in {max(0.0, state.reopen_at - moment):.0f}s)"
        elif state.breaker is BreakerState.CLOSED and state.failures:
            breaker += f" ({state.failures} failed)"
        paused = f"{state.paused_until - moment:.0f}s more" if state.paused_until > moment else "-"
        lines.append(
            f"{name:<{width}} {breaker:<22} {state.waiting:>7}  "
            f"{_limits(state.limits, state.learned):<26} {paused}"
        )
    return "\n".join(lines)


def _limits(limits: RateLimits, learned: RateLimits) -> str:
    parts = []
    for value, learned_value, unit in (
        (limits.requests_per_minute, learned.requests_per_minute, "rpm"),
        (limits.tokens_per_minute, learned.tokens_per_minute, "tpm"),
    ):
        if value is not None:
            parts.append(f"{value} {unit}{' (learned)' if value == learned_value else ''}")
    return ", ".join(parts) or "none"
