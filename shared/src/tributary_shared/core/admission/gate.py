"""One deployment's gate: who may send now, given its breaker, its limits and the queue.

Every replica shares one ``GateState`` per deployment (in Redis, or in
memory in the twin) and changes it only through the operations below, each
atomic there (one Lua script):

- ``enqueue`` puts a call in the fair queue, then pumps.
- ``pump`` refreshes the calling replica's liveness, drops the calls of
  replicas that stopped refreshing theirs, then admits calls from the head of
  the queue while the breaker, a 429's pause and the rate limits allow:
  closed, each call that fits the limits; open after its cooldown, or
  half-open once the probe's lease lapsed, exactly one call, as the probe.
  It says when pumping again could admit more (``retry_in_s``).
- ``report`` takes an admitted call's outcome and what its response said
  about the limits (learned limits, remaining counts, Retry-After), moves
  the breaker, then pumps: a probe that succeeded lets everyone go at once.
- ``leave`` takes a call out of the queue when its caller stops waiting.

Limits are the tighter of the configured ones (sent with every operation)
and those learned from the provider's headers (kept for an hour after the
last response that announced them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tributary_shared.core.admission.breaker import (
    Breaker,
    BreakerPolicy,
    BreakerState,
    CallOutcome,
    Passage,
)
from tributary_shared.core.admission.fairness import FairQueue, Ticket
from tributary_shared.core.admission.headers import RateLimitObservation
from tributary_shared.core.admission.pacing import RateLimits, pace, synced_tat

__all__ = [
    "DEFAULT_PAUSE_S",
    "LEARNED_LIMITS_TTL_S",
    "DeploymentState",
    "GatePolicy",
    "GateState",
    "Grant",
    "Pumped",
    "enqueue",
    "leave",
    "pump",
    "report",
]

DEFAULT_PAUSE_S = 1.0
"""How long a 429 without Retry-After pauses the deployment."""
LEARNED_LIMITS_TTL_S = 3600.0
"""How long limits learned from headers stand after the last response that announced them."""


@dataclass(frozen=True, slots=True)
class GatePolicy:
    """What every operation is told by the calling replica's configuration."""

    limits: RateLimits = field(default_factory=RateLimits)
    """The configured limits (none: only learned ones apply)."""
    burst_s: float = 60.0
    """Seconds' worth of the per-minute limits that may go out at once."""
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    replica_ttl_s: float = 30.0
    """A replica that has not pumped for this long is dead: its calls leave the queue."""
    max_grants: int = 100
    """Calls one pump admits at most (the caller pumps again at once when it hits this)."""


@dataclass(frozen=True, slots=True)
class Grant:
    """A call admitted: its caller may send it now."""

    ticket_id: str
    replica: str
    probe: bool = False
    """It is the breaker's one probe: its outcome decides for everyone."""


@dataclass(frozen=True, slots=True)
class DeploymentState:
    """What the gate of one deployment looks like, for metrics and ``make status``."""

    breaker: BreakerState = BreakerState.CLOSED
    failures: int = 0
    reopen_at: float = 0.0
    paused_until: float = 0.0
    waiting: int = 0
    limits: RateLimits = field(default_factory=RateLimits)
    """The limits in force: the tighter of configured and learned."""
    learned: RateLimits = field(default_factory=RateLimits)


@dataclass(frozen=True, slots=True)
class Pumped:
    granted: tuple[Grant, ...]
    retry_in_s: float | None
    """When pumping again could admit more; None: nothing is waiting."""
    state: DeploymentState


@dataclass
class GateState:
    tat_requests: float = 0.0
    tat_tokens: float = 0.0
    paused_until: float = 0.0
    learned: RateLimits = field(default_factory=RateLimits)
    learned_until: float = 0.0
    configured: RateLimits = field(default_factory=RateLimits)
    """The configured limits the last operation was sent (for ``make status``)."""
    breaker: Breaker = field(default_factory=Breaker)
    queue: FairQueue = field(default_factory=FairQueue)
    replicas: dict[str, float] = field(default_factory=dict)
    """Replica -> when it counts as dead unless it pumps again."""

    def limits(self, now: float) -> RateLimits:
        learned = self.learned if now < self.learned_until else RateLimits()
        return self.configured.tightest(learned)

    def snapshot(self, now: float) -> DeploymentState:
        return DeploymentState(
            breaker=self.breaker.state,
            failures=self.breaker.failures,
            reopen_at=self.breaker.reopen_at,
            paused_until=self.paused_until,
            waiting=len(self.queue),
            limits=self.limits(now),
            learned=self.learned if now < self.learned_until else RateLimits(),
        )


def enqueue(gate: GateState, ticket: Ticket, *, now: float, policy: GatePolicy) -> Pumped:
    gate.queue.enqueue(ticket)
    return pump(gate, replica=ticket.replica, now=now, policy=policy)


def leave(gate: GateState, ticket_id: str) -> None:
    gate.queue.leave(ticket_id)


def pump(gate: GateState, *, replica: str, now: float, policy: GatePolicy) -> Pumped:
    gate.configured = policy.limits
    gate.replicas[replica] = now + policy.replica_ttl_s
    for dead in [name for name, until in gate.replicas.items() if until < now]:
        for ticket in gate.queue.tickets_of(dead):
            gate.queue.leave(ticket.ticket_id)
        del gate.replicas[dead]
    granted: list[Grant] = []
    retry_in_s: float | None = None
    while True:
        head = gate.queue.head()
        if head is None:
            break
        if len(granted) >= policy.max_grants:
            retry_in_s = 0.0
            break
        passage, until = gate.breaker.passage(now)
        if passage is Passage.NONE:
            retry_in_s = until - now
            break
        if passage is Passage.PROBE:
            gate.queue.serve_head()
            gate.breaker = gate.breaker.probing(head.ticket_id, now, policy.breaker)
            granted.append(Grant(head.ticket_id, head.replica, probe=True))
            retry_in_s = policy.breaker.probe_lease_s
            break
        if gate.paused_until > now:
            retry_in_s = gate.paused_until - now
            break
        tats, wait_s = pace(
            (gate.tat_requests, gate.tat_tokens), now, head.tokens, gate.limits(now), policy.burst_s
        )
        if wait_s > 0:
            retry_in_s = wait_s
            break
        gate.tat_requests, gate.tat_tokens = tats
        gate.queue.serve_head()
        granted.append(Grant(head.ticket_id, head.replica))
    return Pumped(tuple(granted), retry_in_s, gate.snapshot(now))


def report(
    gate: GateState,
    *,
    ticket_id: str,
    outcome: CallOutcome,
    observation: RateLimitObservation,
    replica: str,
    now: float,
    policy: GatePolicy,
) -> Pumped:
    _learn(gate, observation, now=now, policy=policy)
    if outcome is CallOutcome.RATE_LIMITED:
        pause_s = observation.retry_after_s
        gate.paused_until = max(
            gate.paused_until, now + (DEFAULT_PAUSE_S if pause_s is None else pause_s)
        )
    gate.breaker = gate.breaker.after(ticket_id, outcome, now, policy.breaker)
    return pump(gate, replica=replica, now=now, policy=policy)


def _learn(
    gate: GateState, observation: RateLimitObservation, *, now: float, policy: GatePolicy
) -> None:
    announced = observation.limits
    if not announced.unlimited:
        learned = gate.learned if now < gate.learned_until else RateLimits()
        gate.learned = RateLimits(
            requests_per_minute=announced.requests_per_minute or learned.requests_per_minute,
            tokens_per_minute=announced.tokens_per_minute or learned.tokens_per_minute,
        )
        gate.learned_until = now + LEARNED_LIMITS_TTL_S
    gate.configured = policy.limits
    limits = gate.limits(now)
    if limits.requests_per_minute is not None and observation.remaining_requests is not None:
        gate.tat_requests = synced_tat(
            gate.tat_requests,
            now,
            limits.requests_per_minute,
            policy.burst_s,
            observation.remaining_requests,
        )
    if limits.tokens_per_minute is not None and observation.remaining_tokens is not None:
        gate.tat_tokens = synced_tat(
            gate.tat_tokens,
            now,
            limits.tokens_per_minute,
            policy.burst_s,
            observation.remaining_tokens,
        )
