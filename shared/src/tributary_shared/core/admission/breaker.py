"""The circuit breaker of one deployment, shared by every replica.

::

    closed ──(failures_to_open outages in a row)──▶ open
    open ──(cooldown over: ONE call is let through as the probe)──▶ half-open
    half-open ──(the probe answers)──▶ closed          everyone resumes
    half-open ──(the probe fails with an outage)──▶ open      another cooldown
    half-open ──(the probe's lease lapses, or it is abandoned)──▶ a new probe

Only outages count (``core.errors.PROVIDER_OUTAGE_CODES``): any answer, even a
429 or a refused request, shows the endpoint is up. While open, results of
calls sent before it opened change nothing; in half-open only the probe's
result does. The probe holds a lease so that a replica that dies with it in
flight does not keep everyone waiting: once it lapses the next call probes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from tributary_shared.core.errors import TributaryError, is_provider_outage

__all__ = ["Breaker", "BreakerPolicy", "BreakerState", "CallOutcome", "Passage", "outcome_of"]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CallOutcome(StrEnum):
    """How an admitted call ended, as far as the deployment's health is concerned."""

    OK = "ok"
    ANSWERED = "answered"
    """The endpoint answered with an error that is not about its health (a 400, say)."""
    RATE_LIMITED = "rate_limited"
    OUTAGE = "outage"
    ABANDONED = "abandoned"
    """The caller gave up before an answer (cancelled): says nothing about the endpoint."""

    @property
    def endpoint_up(self) -> bool:
        return self in (CallOutcome.OK, CallOutcome.ANSWERED, CallOutcome.RATE_LIMITED)


class Passage(StrEnum):
    """What the breaker lets through now."""

    ALL = "all"
    PROBE = "probe"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failures_to_open: int = 5
    """Outages in a row that open it; 0 never opens it."""
    cooldown_s: float = 10.0
    """Seconds open before a probe goes."""
    probe_lease_s: float = 90.0
    """Seconds a probe may take before another call probes instead."""


@dataclass(frozen=True, slots=True)
class Breaker:
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    """Outages in a row while closed."""
    reopen_at: float = 0.0
    """While open: when the next probe may go."""
    probe: str = ""
    """While half-open: the ticket of the call probing."""
    probe_until: float = 0.0
    """While half-open: when the probe's lease lapses."""

    def passage(self, now: float) -> tuple[Passage, float]:
        """What may go now, and (for ``NONE``) until when nothing may."""
        if self.state is BreakerState.CLOSED:
            return Passage.ALL, now
        if self.state is BreakerState.OPEN:
            return (Passage.PROBE, now) if now >= self.reopen_at else (Passage.NONE, self.reopen_at)
        if now >= self.probe_until:
            return Passage.PROBE, now
        return Passage.NONE, self.probe_until

    def probing(self, ticket_id: str, now: float, policy: BreakerPolicy) -> Breaker:
        return replace(
            self,
            state=BreakerState.HALF_OPEN,
            probe=ticket_id,
            probe_until=now + policy.probe_lease_s,
        )

    def after(
        self, ticket_id: str, outcome: CallOutcome, now: float, policy: BreakerPolicy
    ) -> Breaker:
        """The breaker once the call ``ticket_id`` ended with ``outcome``."""
        if self.state is BreakerState.CLOSED:
            if outcome is CallOutcome.OUTAGE:
                failures = self.failures + 1
                if policy.failures_to_open and failures >= policy.failures_to_open:
                    return self._opened(now, policy)
                return replace(self, failures=failures)
            if outcome.endpoint_up:
                return replace(self, failures=0)
            return self
        if self.state is not BreakerState.HALF_OPEN or ticket_id != self.probe:
            return self  # sent before it opened, or not the probe: no evidence
        if outcome is CallOutcome.OUTAGE:
            return self._opened(now, policy)
        if outcome.endpoint_up:
            return Breaker()
        # Abandoned: the next call probes at once instead of after the lease.
        return Breaker(state=BreakerState.OPEN, reopen_at=now)

    def _opened(self, now: float, policy: BreakerPolicy) -> Breaker:
        return Breaker(state=BreakerState.OPEN, reopen_at=now + policy.cooldown_s)


def outcome_of(error: BaseException | None) -> CallOutcome:
    """The outcome of a call that ended with ``error`` (None: it succeeded)."""
    if error is None:
        return CallOutcome.OK
    if is_provider_outage(error):
        return CallOutcome.OUTAGE
    if isinstance(error, TributaryError):
        return (
            CallOutcome.RATE_LIMITED if error.code == "llm_rate_limited" else CallOutcome.ANSWERED
        )
    return CallOutcome.ABANDONED
