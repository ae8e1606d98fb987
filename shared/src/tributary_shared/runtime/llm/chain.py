"""Where an LLM call goes, and when it tries again: its chain of deployments.

A call names its models (the role's model, then the fallback model; see
``routing``). Each model is served by an ordered list of deployments
(``LLMSettings.deployments_for``), and the call's chain is all of them, model
by model: ``(primary, eu), (primary, us), (fallback, default)``.

``CallPlan`` decides, after each failed try, where the next one goes and when
(pure: the caller passes the clock and the randomness in):

- a transient failure (timeout, connection refused or reset, 5xx, 429,
  overloaded) is tried again on the same deployment after a backoff, up to
  ``TRIBUTARY_LLM_MAX_ATTEMPTS`` tries; then the next deployment takes over at
  once. After the last one, the call goes round the chain again, after a
  backoff. A deployment that said when to come back (``Retry-After``) is not
  tried again before then, and hands over to the next one at once. All this
  for as long as the call's patience (``TRIBUTARY_LLM_PATIENCE_S``, counted
  from its first failure) and its workflow's deadline allow: a next try that
  would come later than the patience allows is not made, and the call fails
  with the last error.
- a failure the table lets fall back but not retry (a model the endpoint does
  not know) hands over to the next deployment at once and drops that
  deployment from the call;
- anything else ends the call.

The deadline is never slept past: a wait that would end after it ends at it,
and the call then stops with ``DeadlineExceeded``.

Each try also waits for its turn at its deployment's admission gate (its
shared circuit breaker and rate limits; ``runtime.llm.admission``), for no
longer than ``admission_deadline`` says: while another deployment of the chain
could take the call, ``TRIBUTARY_LLM_HANDOVER_WAIT_S``; else as long as the
patience and the deadline allow. A try the gate held back that long
(``HeldBack``) is a transient failure of that deployment: the next one takes
over at once, or the call goes on waiting, as for any other.

``Cooldowns`` is the process's memory of deployments whose tries just ran out:
for a while, or until one of them answers again, chains try them last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tributary_shared.core.errors import (
    DeadlineExceeded,
    TransientError,
    TributaryError,
    recovery_for,
)
from tributary_shared.runtime.settings import Deployment, LLMSettings

__all__ = [
    "CallPlan",
    "Cooldowns",
    "GiveUp",
    "HeldBack",
    "RetryPolicy",
    "Target",
    "TryAgain",
    "chain_of",
]


@dataclass(frozen=True)
class Target:
    """One link of a chain: a model at one of its deployments."""

    model: str
    """The model name the call asked for."""
    deployment: Deployment

    @property
    def provider_model(self) -> str:
        """The name the deployment's endpoint knows the model by."""
        return self.deployment.model or self.model

    @property
    def key(self) -> tuple[str, str]:
        return (self.model, self.deployment.id)


def chain_of(settings: LLMSettings, models: Sequence[str]) -> tuple[Target, ...]:
    return tuple(
        Target(model, deployment)
        for model in dict.fromkeys(models)
        for deployment in settings.deployments_for(model)
    )


class HeldBack(TransientError):
    """A deployment's admission gate did not let the try go in time: its circuit
    breaker is open, or its rate limit is reached. Nothing was sent."""

    default_code = "llm_unavailable"

    def __init__(self, deployment: str) -> None:
        super().__init__(
            f"the LLM deployment {deployment} did not take the call in time (its circuit "
            "breaker is open or its rate limit is reached)"
        )


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    """Tries per deployment before the next one takes over."""
    max_backoff_s: float
    patience_s: float
    handover_wait_s: float = 2.0
    """Longest a try waits at a deployment's gate while another deployment could take it."""

    @classmethod
    def of(cls, settings: LLMSettings) -> RetryPolicy:
        return cls(
            max_attempts=settings.max_attempts,
            max_backoff_s=settings.max_backoff_s,
            patience_s=settings.patience_s,
            handover_wait_s=settings.handover_wait_s,
        )


@dataclass(frozen=True)
class TryAgain:
    target: Target
    at: float
    """When (epoch seconds): now, when another deployment takes over at once."""
    handed_over_from: Target | None = None
    """The deployment the call moved away from, when it moved."""


@dataclass(frozen=True)
class GiveUp:
    error: TributaryError


class CallPlan:
    """One call's way down (and round) its chain; see the module."""

    def __init__(
        self,
        chain: Sequence[Target],
        policy: RetryPolicy,
        *,
        deadline_at: float | None = None,
    ) -> None:
        if not chain:
            raise ValueError("a call needs at least one deployment")
        self._chain = tuple(chain)
        self._policy = policy
        self._deadline_at = deadline_at
        self._position = 0
        self._tries_here = 0
        self._failures = 0
        self._rounds = 0
        self._dropped: set[int] = set()
        self._not_before: dict[int, float] = {}
        self._first_failure_at: float | None = None
        self._last_error: TributaryError | None = None
        self._last_sent_error: TributaryError | None = None
        self._deadline_reached = False

    @property
    def target(self) -> Target:
        """Where the next try goes."""
        return self._chain[self._position]

    @property
    def attempts(self) -> int:
        """Tries failed so far, on every deployment."""
        return self._failures

    @property
    def waiting_since(self) -> float | None:
        return self._first_failure_at

    @property
    def last_error(self) -> TributaryError | None:
        """Why the last try failed (None: none has)."""
        return self._last_error

    def deadline_passed(self, now: float) -> bool:
        return self._deadline_at is not None and now >= self._deadline_at

    def admission_deadline(self, now: float) -> float | None:
        """The latest the next try may wait for its turn at its deployment's gate
        (None: no bound)."""
        bounds = [] if self._deadline_at is None else [self._deadline_at]
        if self._others_live():
            bounds.append(now + self._policy.handover_wait_s)
        if self._first_failure_at is not None:
            bounds.append(self._first_failure_at + self._policy.patience_s)
        return min(bounds) if bounds else None

    def _others_live(self) -> bool:
        return len(self._chain) - len(self._dropped) > 1

    def stop_before_try(self, now: float) -> DeadlineExceeded | None:
        """The error that ends the call before its next try, when the deadline has passed."""
        if self._deadline_reached or (self._deadline_at is not None and now >= self._deadline_at):
            return DeadlineExceeded(self._deadline_message())
        return None

    def timeout_s(self, now: float, *, request_timeout_s: float) -> float:
        """The next request's timeout: the configured one, or what is left before the deadline."""
        if self._deadline_at is None:
            return request_timeout_s
        return max(0.1, min(request_timeout_s, self._deadline_at - now))

    def after_failure(
        self, error: TributaryError, *, now: float, jitter: float
    ) -> TryAgain | GiveUp:
        """Where and when the call tries next after ``error``, or that it gives up.

        ``jitter`` is a draw from [0, 1] spreading out the backoff.
        """
        self._last_error = error
        if not isinstance(error, HeldBack):
            self._last_sent_error = error
        recovery = recovery_for(error)
        if self._first_failure_at is None:
            self._first_failure_at = now
        self._failures += 1
        failed = self._position
        if recovery.retry is None:
            if not recovery.falls_back:
                return GiveUp(error)
            self._dropped.add(failed)  # it will not know the model next time round either
            if not self._move_on():
                return GiveUp(error)
            at = max(now, self._not_before.get(self._position, now))
            return self._schedule(at=at, now=now, handed_over_from=self._chain[failed])
        retry_after_s = error.retry_after_s if isinstance(error, TransientError) else None
        asked_to_wait = bool(retry_after_s)
        if retry_after_s:
            self._not_before[failed] = now + retry_after_s
        self._tries_here += 1
        handed_over_from: Target | None = None
        wrapped = False
        # A deployment that asks for time, or whose gate held the try back, has no
        # headroom now: another one takes over.
        no_headroom = asked_to_wait or isinstance(error, HeldBack)
        if self._tries_here >= self._policy.max_attempts or (no_headroom and self._others_live()):
            rounds = self._rounds
            self._move_on()  # never fails: the failed deployment itself is still in
            wrapped = self._rounds > rounds
            if self._position != failed:
                handed_over_from = self._chain[failed]
        if handed_over_from is not None and not wrapped:
            wait_s = 0.0  # the next deployment takes over at once
        else:
            wait_s = recovery.retry.delay(
                self._failures, jitter=jitter, cap_s=self._policy.max_backoff_s
            )
        at = max(now + wait_s, self._not_before.get(self._position, now))
        if at > self._first_failure_at + self._policy.patience_s:
            # The most telling error: what the endpoint said, not that a gate held on.
            return GiveUp(self._last_sent_error or error)
        return self._schedule(at=at, now=now, handed_over_from=handed_over_from)

    def _schedule(self, *, at: float, now: float, handed_over_from: Target | None) -> TryAgain:
        if self._deadline_at is not None and at >= self._deadline_at:
            # Wait until the deadline, not past it; the next try does not happen.
            self._deadline_reached = True
            at = max(now, self._deadline_at)
        return TryAgain(self.target, at=at, handed_over_from=handed_over_from)

    def _move_on(self) -> bool:
        """To the next deployment still in the call, round to the first after the last;
        False when every deployment was dropped."""
        for step in range(1, len(self._chain) + 1):
            position = (self._position + step) % len(self._chain)
            if position not in self._dropped:
                if position <= self._position:
                    self._rounds += 1
                self._position = position
                self._tries_here = 0
                return True
        return False

    def _deadline_message(self) -> str:
        last = self._last_sent_error or self._last_error
        if last is None:
            return "the workflow's deadline passed before its LLM call could start"
        return (
            "the workflow's deadline passed while its LLM call waited for the model "
            f"({last.code}: {last.message})"
        )


class Cooldowns:
    """Deployments whose tries just ran out in this process: chains try them last for a
    while, or until they answer again."""

    def __init__(self, cooldown_s: float) -> None:
        self._cooldown_s = cooldown_s
        self._until: dict[tuple[str, str], float] = {}

    def order(self, chain: Sequence[Target], *, now: float) -> tuple[Target, ...]:
        """``chain`` with the cooling deployments moved to its end, each part in order."""
        cooling = {key for key, until in self._until.items() if until > now}
        ready = [target for target in chain if target.key not in cooling]
        return (*ready, *(target for target in chain if target.key in cooling))

    def cool(self, target: Target, *, now: float) -> None:
        if self._cooldown_s > 0:
            self._until[target.key] = now + self._cooldown_s

    def recovered(self, target: Target) -> None:
        """It answered: back in its place at once (after an outage of every deployment,
        the first one to answer goes first)."""
        self._until.pop(target.key, None)
