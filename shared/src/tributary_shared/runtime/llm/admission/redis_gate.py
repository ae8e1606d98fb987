"""The Redis adapter of the deployment gates: each operation is one run of ``gate.lua``.

The script applies ``core.admission``'s rules atomically on the deployment's
keys (hash tag ``{<deployment>}``), on Redis's clock unless a ``clock`` is
given (the contract tests pass one, to compute pacing without waiting).
Grants one replica's pump makes for another's calls are pushed to that
replica's list, which it pops with a blocking read (``take_grants``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from importlib import resources
from typing import Any

from redis.asyncio import Redis

from tributary_shared.core.admission import (
    DEFAULT_PAUSE_S,
    LEARNED_LIMITS_TTL_S,
    STRIDE,
    BreakerState,
    CallOutcome,
    DeploymentState,
    GatePolicy,
    Grant,
    Pumped,
    RateLimitObservation,
    RateLimits,
    Ticket,
)
from tributary_shared.core.keys import DEPLOYMENTS_KEY, DeploymentKeys

__all__ = ["RedisDeploymentGate"]

_LUA = resources.files("tributary_shared.runtime.llm.admission").joinpath("gate.lua").read_text()
_MOST_GRANTS_PER_READ = 100


class RedisDeploymentGate:
    def __init__(
        self,
        redis: Redis,
        *,
        blocking_redis: Redis | None = None,
        clock: Callable[[], float] | None = None,
        ttl_s: int = 86_400,
    ) -> None:
        """``blocking_redis`` serves ``take_grants``' blocking reads (default: ``redis``)."""
        self._redis = redis
        self._blocking = blocking_redis or redis
        self._clock = clock
        self._ttl_s = ttl_s
        self._script = redis.register_script(_LUA)
        self._indexed: set[str] = set()

    async def _run(
        self,
        deployment: str,
        op: str,
        *,
        policy: GatePolicy | None = None,
        replica: str = "",
        payload: str = "",
    ) -> Pumped:
        keys = DeploymentKeys(deployment)
        if deployment not in self._indexed:
            await self._redis.sadd(DEPLOYMENTS_KEY, deployment)
            self._indexed.add(deployment)
        raw = await self._script(
            keys=keys.fixed(),
            args=[
                op,
                keys.prefix,
                "" if self._clock is None else repr(float(self._clock())),
                _policy_json(policy or GatePolicy()),
                replica,
                payload,
                self._ttl_s,
            ],
        )
        return _pumped(json.loads(raw))

    async def enqueue(self, deployment: str, ticket: Ticket, *, policy: GatePolicy) -> Pumped:
        payload = json.dumps(
            {
                "id": ticket.ticket_id,
                "tenant": ticket.tenant_id,
                "workflow": ticket.workflow_id,
                "replica": ticket.replica,
                "tokens": ticket.tokens,
                "stride": ticket.stride,
            }
        )
        return await self._run(
            deployment, "enqueue", policy=policy, replica=ticket.replica, payload=payload
        )

    async def pump(self, deployment: str, *, replica: str, policy: GatePolicy) -> Pumped:
        return await self._run(deployment, "pump", policy=policy, replica=replica)

    async def report(
        self,
        deployment: str,
        *,
        replica: str,
        ticket_id: str,
        outcome: CallOutcome,
        observation: RateLimitObservation,
        policy: GatePolicy,
    ) -> Pumped:
        payload = json.dumps(
            {
                "ticket": ticket_id,
                "outcome": outcome.value,
                "rpm": observation.limits.requests_per_minute or 0,
                "tpm": observation.limits.tokens_per_minute or 0,
                "remaining_requests": _or_minus_one(observation.remaining_requests),
                "remaining_tokens": _or_minus_one(observation.remaining_tokens),
                "retry_after_s": _or_minus_one(observation.retry_after_s),
            }
        )
        return await self._run(
            deployment, "report", policy=policy, replica=replica, payload=payload
        )

    async def leave(self, deployment: str, ticket_id: str) -> None:
        await self._run(deployment, "leave", payload=ticket_id)

    async def take_grants(self, deployment: str, *, replica: str, timeout_s: float) -> list[Grant]:
        inbox = DeploymentKeys(deployment).grants(replica)
        # BLPOP's timeout 0 means forever: the shortest wait is a plain pop.
        if timeout_s < 0.01:
            first = await self._redis.lpop(inbox)
            if first is None:
                return []
        else:
            popped = await self._blocking.blpop([inbox], timeout=timeout_s)
            if popped is None:
                return []
            first = popped[1]
        rest = await self._redis.lpop(inbox, _MOST_GRANTS_PER_READ) or []
        grants = []
        for raw in [first, *rest]:
            ticket_id, probe = json.loads(raw)
            grants.append(Grant(ticket_id=ticket_id, replica=replica, probe=bool(probe)))
        return grants

    async def state(self, deployment: str) -> DeploymentState:
        return (await self._run(deployment, "state")).state

    async def deployments(self) -> list[str]:
        members = await self._redis.smembers(DEPLOYMENTS_KEY)
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)


def _or_minus_one(value: float | None) -> float:
    return -1 if value is None else value


def _policy_json(policy: GatePolicy) -> str:
    return json.dumps(
        {
            "rpm": policy.limits.requests_per_minute or 0,
            "tpm": policy.limits.tokens_per_minute or 0,
            "burst_s": policy.burst_s,
            **asdict(policy.breaker),
            "replica_ttl_s": policy.replica_ttl_s,
            "max_grants": policy.max_grants,
            "stride": STRIDE,
            "default_pause_s": DEFAULT_PAUSE_S,
            "learned_ttl_s": LEARNED_LIMITS_TTL_S,
        }
    )


def _pumped(result: dict[str, Any]) -> Pumped:
    granted = result.get("granted") or []  # cjson writes an empty list as {}
    state = result["state"]
    retry_in = result.get("retry_in")
    return Pumped(
        granted=tuple(
            Grant(ticket_id=str(ticket_id), replica=str(owner), probe=bool(probe))
            for ticket_id, owner, probe in granted
        ),
        retry_in_s=None if retry_in is None else float(retry_in),
        state=DeploymentState(
            breaker=BreakerState(state["breaker"]),
            failures=int(state["failures"]),
            reopen_at=float(state["reopen_at"]),
            paused_until=float(state["paused_until"]),
            waiting=int(state["waiting"]),
            limits=RateLimits(
                requests_per_minute=int(state["rpm"]) or None,
                tokens_per_minute=int(state["tpm"]) or None,
            ),
            learned=RateLimits(
                requests_per_minute=int(state["learned_rpm"]) or None,
                tokens_per_minute=int(state["learned_tpm"]) or None,
            ),
        ),
    )
