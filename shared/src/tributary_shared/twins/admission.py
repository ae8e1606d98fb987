"""The deployment gates in memory: ``core.admission``'s operations, as ``gate.lua`` runs them.

Several ``Admission`` instances over one twin behave as replicas sharing one
Redis: grants for another replica's calls wait in that replica's inbox.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from tributary_shared.core.admission import (
    CallOutcome,
    DeploymentState,
    GatePolicy,
    GateState,
    Grant,
    Pumped,
    RateLimitObservation,
    Ticket,
    enqueue,
    leave,
    pump,
    report,
)

__all__ = ["MemoryDeploymentGate"]


class MemoryDeploymentGate:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.gates: dict[str, GateState] = {}
        self._inboxes: dict[tuple[str, str], list[Grant]] = {}
        self._delivered = asyncio.Condition()

    def _gate(self, deployment: str) -> GateState:
        return self.gates.setdefault(deployment, GateState())

    async def _hand_out(self, deployment: str, pumped: Pumped, *, replica: str) -> Pumped:
        """Grants for other replicas' calls go to their inboxes, as the script pushes them."""
        others = [grant for grant in pumped.granted if grant.replica != replica]
        if others:
            async with self._delivered:
                for grant in others:
                    self._inboxes.setdefault((deployment, grant.replica), []).append(grant)
                self._delivered.notify_all()
        return pumped

    async def enqueue(self, deployment: str, ticket: Ticket, *, policy: GatePolicy) -> Pumped:
        pumped = enqueue(self._gate(deployment), ticket, now=self._clock(), policy=policy)
        return await self._hand_out(deployment, pumped, replica=ticket.replica)

    async def pump(self, deployment: str, *, replica: str, policy: GatePolicy) -> Pumped:
        pumped = pump(self._gate(deployment), replica=replica, now=self._clock(), policy=policy)
        return await self._hand_out(deployment, pumped, replica=replica)

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
        pumped = report(
            self._gate(deployment),
            ticket_id=ticket_id,
            outcome=outcome,
            observation=observation,
            replica=replica,
            now=self._clock(),
            policy=policy,
        )
        return await self._hand_out(deployment, pumped, replica=replica)

    async def leave(self, deployment: str, ticket_id: str) -> None:
        leave(self._gate(deployment), ticket_id)

    async def take_grants(self, deployment: str, *, replica: str, timeout_s: float) -> list[Grant]:
        key = (deployment, replica)
        if self._inboxes.get(key):
            return self._inboxes.pop(key)

        async def any_grant() -> None:
            async with self._delivered:
                await self._delivered.wait_for(lambda: bool(self._inboxes.get(key)))

        try:
            await asyncio.wait_for(any_grant(), timeout=max(0.0, timeout_s))
        except TimeoutError:
            return []
        return self._inboxes.pop(key, [])

    async def state(self, deployment: str) -> DeploymentState:
        return self._gate(deployment).snapshot(self._clock())

    async def deployments(self) -> list[str]:
        return sorted(self.gates)
