"""One process's side of admission: its calls wait for their turn, then go and report back.

``Admission.admit`` wraps the HTTP call of one LLM request::

    async with admission.admit(deployment=model, context=context, messages=messages,
                               tools=tools, max_tokens=max_tokens):
        response = await client.chat.completions.create(...)

Before the block, the call takes a ticket in the deployment's shared queue
(``DeploymentGate.enqueue``) and waits, without polling and holding no
sending slot, until it is granted: by its own enqueue when nothing stands in
the way, else by a pump of this process or of any other replica. Then it
takes one of the process's sending slots (``TRIBUTARY_LLM_MAX_SENDING``) for
the request itself. After the block, the outcome (an answer, a 429, an
outage) and the response's rate-limit headers go back to the gate, which
moves the breaker and the limiter for every replica.

While this process has calls waiting for a deployment, one task per
deployment pumps its gate each time something could change (the limiter's
next slot, the end of a pause or a cool-down, at most every few seconds, which
also keeps this replica's tickets alive) and waits for grants other replicas'
pumps made for it (a blocking read, so no spinning).

A call gives up waiting when its workflow's deadline passes
(``DeadlineExceeded``, code ``llm_admission_deadline_exceeded``) or its task
is cancelled; either way it leaves the queue. At most
``TRIBUTARY_LLM_MAX_WAITING`` calls of the process wait at once: one more is
refused with the transient ``llm_admission_queue_full``.

When Redis is unreachable the gate cannot be consulted: the calls waiting and
those arriving go out unpaced (logged and counted as ``bypassed``) rather
than stall on an outage of something that is not the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, Protocol

import openai

from tributary_shared.core.admission import (
    BreakerPolicy,
    BreakerState,
    CallOutcome,
    GatePolicy,
    Grant,
    Pumped,
    RateLimitObservation,
    RateLimits,
    Ticket,
    outcome_of,
    read_rate_limit_headers,
    stride_for,
)
from tributary_shared.core.completions import CallContext, Message
from tributary_shared.core.errors import DeadlineExceeded, TransientError
from tributary_shared.core.ports import DeploymentGate
from tributary_shared.runtime import metrics
from tributary_shared.runtime.budget.pricing import estimate_prompt_tokens
from tributary_shared.runtime.llm.admission.heard import Heard, listening
from tributary_shared.runtime.llm.errors import classify_sdk_error
from tributary_shared.runtime.outages import is_outage
from tributary_shared.runtime.settings import AdmissionSettings

__all__ = ["UNPACED", "Admission", "CallAdmission", "Unpaced"]

log = logging.getLogger(__name__)

_LONGEST_PAUSE_S = 5.0
"""Longest a pumping task waits between pumps: it keeps the replica's tickets alive."""
_REPLICA_TTL_S = 30.0
_AFTER_ERROR_S = 1.0
_ANONYMOUS = CallContext(workflow_id="", tenant_id="default")
"""Calls made for no workflow (tools, scripts) queue as one workflow of the default tenant."""


class CallAdmission(Protocol):
    """What the LLM client needs: a block its HTTP call runs in once admitted."""

    def admit(
        self,
        *,
        deployment: str,
        context: CallContext | None,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] | None,
        max_tokens: int | None,
    ) -> AbstractAsyncContextManager[object]: ...


class Unpaced:
    """Every call goes at once: no shared limits, breaker or queue (tests, scripts)."""

    def admit(
        self,
        *,
        deployment: str,
        context: CallContext | None,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] | None,
        max_tokens: int | None,
    ) -> AbstractAsyncContextManager[object]:
        return contextlib.nullcontext()


UNPACED = Unpaced()


@dataclass
class _Waiter:
    deployment: str
    granted: asyncio.Future[Grant | None]


class Admission:
    """This process's calls to every deployment, through the gate they share (see the module)."""

    def __init__(
        self,
        gate: DeploymentGate,
        *,
        settings: AdmissionSettings,
        limits_for: Callable[[str], RateLimits] | None = None,
        replica: str | None = None,
    ) -> None:
        """``limits_for`` gives a deployment's configured limits (default: the
        settings' ``llm_rate_limits`` by deployment name)."""
        self._gate = gate
        self._settings = settings
        self._limits_for = limits_for or self._configured_limits
        self.replica = replica or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._breaker = BreakerPolicy(
            failures_to_open=settings.llm_breaker_failures,
            cooldown_s=settings.llm_breaker_cooldown_s,
            probe_lease_s=settings.llm_breaker_probe_lease_s,
        )
        self._waiters: dict[str, _Waiter] = {}
        self._pumps: dict[str, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._sending = asyncio.Semaphore(settings.llm_max_sending)
        self._seen: dict[str, BreakerState] = {}

    def _configured_limits(self, deployment: str) -> RateLimits:
        configured = self._settings.llm_rate_limits.get(deployment)
        if configured is None:
            return RateLimits()
        return RateLimits(requests_per_minute=configured.rpm, tokens_per_minute=configured.tpm)

    def _policy(self, deployment: str) -> GatePolicy:
        return GatePolicy(
            limits=self._limits_for(deployment),
            burst_s=self._settings.llm_rate_burst_s,
            breaker=self._breaker,
            replica_ttl_s=_REPLICA_TTL_S,
        )

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @asynccontextmanager
    async def admit(
        self,
        *,
        deployment: str,
        context: CallContext | None,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] | None = None,
        max_tokens: int | None = None,
    ) -> AsyncIterator[None]:
        context = context or _ANONYMOUS
        ticket = Ticket(
            ticket_id=uuid.uuid4().hex,
            tenant_id=context.tenant_id,
            workflow_id=context.workflow_id,
            replica=self.replica,
            tokens=estimate_prompt_tokens(messages, tools) + (max_tokens or 0),
            stride=stride_for(self._settings.tenant_weights.get(context.tenant_id, 1.0)),
        )
        grant = await self._turn(deployment, ticket, context.deadline_at)
        async with self._sending:
            sending = metrics.LLM_ADMISSION_SENDING.labels(deployment)
            sending.inc()
            error: BaseException | None = None
            try:
                with listening() as heard:
                    yield
            except BaseException as exc:
                error = exc
                raise
            finally:
                sending.dec()
                if grant is not None:
                    await self._report(deployment, grant, error, heard)

    # --- waiting for the turn ------------------------------------------------------

    async def _turn(
        self, deployment: str, ticket: Ticket, deadline_at: float | None
    ) -> Grant | None:
        """The grant once it is the call's turn (None: admitted without the gate)."""
        waited = metrics.LLM_ADMISSION_WAIT_SECONDS
        if len(self._waiters) >= self._settings.llm_max_waiting:
            waited.labels(deployment, "queue_full").observe(0)
            raise TransientError(
                f"{self._settings.llm_max_waiting} LLM calls of this process are already "
                "waiting for their turn",
                code="llm_admission_queue_full",
                retry_after_s=1.0,
            )
        if deadline_at is not None and time.time() >= deadline_at:
            waited.labels(deployment, "deadline").observe(0)
            raise _deadline_passed(deployment)
        granted: asyncio.Future[Grant | None] = asyncio.get_running_loop().create_future()
        self._waiters[ticket.ticket_id] = _Waiter(deployment, granted)
        waiting = metrics.LLM_ADMISSION_WAITING.labels(deployment)
        waiting.inc()
        started = time.monotonic()
        outcome = "cancelled"
        try:
            try:
                pumped = await self._gate.enqueue(
                    deployment, ticket, policy=self._policy(deployment)
                )
            except Exception as exc:
                if not is_outage(exc):
                    outcome = "error"
                    raise
                self._bypass(deployment, exc)
            else:
                self._deliver(deployment, pumped)
                if not granted.done():
                    self._keep_pumping(deployment)
            timeout_s = None if deadline_at is None else max(0.0, deadline_at - time.time())
            try:
                grant = await asyncio.wait_for(granted, timeout_s)
            except TimeoutError:
                outcome = "deadline"
                await self._leave(deployment, ticket.ticket_id)
                raise _deadline_passed(deployment) from None
            except asyncio.CancelledError:
                self._in_background(self._leave(deployment, ticket.ticket_id))
                raise
            outcome = "admitted" if grant is not None else "bypassed"
            return grant
        finally:
            del self._waiters[ticket.ticket_id]
            waiting.dec()
            waited.labels(deployment, outcome).observe(time.monotonic() - started)

    async def _leave(self, deployment: str, ticket_id: str) -> None:
        try:
            await asyncio.wait_for(self._gate.leave(deployment, ticket_id), timeout=2.0)
        except Exception:  # best effort: a replica's stale tickets lapse with it
            log.info("a call that stopped waiting could not leave the queue of %s", deployment)

    def _keep_pumping(self, deployment: str) -> None:
        task = self._pumps.get(deployment)
        if task is None or task.done():
            self._pumps[deployment] = asyncio.create_task(
                self._pump(deployment), name=f"llm-admission-{deployment}"
            )

    def _waiting_on(self, deployment: str) -> bool:
        return any(
            w.deployment == deployment and not w.granted.done() for w in self._waiters.values()
        )

    async def _pump(self, deployment: str) -> None:
        pause_s = 0.0
        while self._waiting_on(deployment):
            try:
                for grant in await self._gate.take_grants(
                    deployment, replica=self.replica, timeout_s=pause_s
                ):
                    self._grant(deployment, grant)
                if not self._waiting_on(deployment):
                    return
                pumped = await self._gate.pump(
                    deployment, replica=self.replica, policy=self._policy(deployment)
                )
                self._deliver(deployment, pumped)
                pause_s = min(
                    _LONGEST_PAUSE_S,
                    _LONGEST_PAUSE_S if pumped.retry_in_s is None else pumped.retry_in_s,
                )
            except Exception as exc:
                if is_outage(exc):
                    self._bypass(deployment, exc)
                else:
                    log.exception("pumping the admission gate of %s failed", deployment)
                await asyncio.sleep(_AFTER_ERROR_S)
                pause_s = 0.0

    def _deliver(self, deployment: str, pumped: Pumped) -> None:
        self._observe(deployment, pumped)
        for grant in pumped.granted:
            if grant.replica == self.replica:
                self._grant(deployment, grant)

    def _grant(self, deployment: str, grant: Grant) -> None:
        waiter = self._waiters.get(grant.ticket_id)
        if waiter is not None and not waiter.granted.done():
            waiter.granted.set_result(grant)
        elif grant.probe:
            # Its caller stopped waiting: the next call probes now, not after the lease.
            self._in_background(self._report(deployment, grant, asyncio.CancelledError(), Heard()))

    def _bypass(self, deployment: str, exc: BaseException) -> None:
        log.warning(
            "the admission gate of %s is unreachable (%s): waiting calls go out unpaced",
            deployment,
            type(exc).__name__,
        )
        for waiter in self._waiters.values():
            if waiter.deployment == deployment and not waiter.granted.done():
                waiter.granted.set_result(None)

    # --- after the call ---------------------------------------------------------------

    async def _report(
        self, deployment: str, grant: Grant, error: BaseException | None, heard: Heard
    ) -> None:
        if isinstance(error, openai.OpenAIError):
            error = classify_sdk_error(error, model=deployment)
        outcome = outcome_of(error)
        observation = read_rate_limit_headers(heard.headers or {})
        if outcome is CallOutcome.RATE_LIMITED:
            metrics.LLM_RATE_LIMITED_TOTAL.labels(deployment).inc()
            if observation.retry_after_s is None and isinstance(error, TransientError):
                observation = replace(observation, retry_after_s=error.retry_after_s)
        if outcome is CallOutcome.ABANDONED and not grant.probe and observation.empty:
            return  # nothing learned, and only a probe's end matters to the breaker
        report = self._gate.report(
            deployment,
            replica=self.replica,
            ticket_id=grant.ticket_id,
            outcome=outcome,
            observation=observation,
            policy=self._policy(deployment),
        )
        if isinstance(error, asyncio.CancelledError) or _nothing_to_wait_for(
            outcome, grant, observation
        ):
            self._in_background(self._deliver_report(deployment, report))
        else:
            await self._deliver_report(deployment, report)

    async def _deliver_report(self, deployment: str, report: Awaitable[Pumped]) -> None:
        try:
            self._deliver(deployment, await report)
        except Exception:
            log.warning("an LLM call's outcome could not be reported to the gate of %s", deployment)

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _observe(self, deployment: str, pumped: Pumped) -> None:
        state = pumped.state
        for each in BreakerState:
            metrics.LLM_BREAKER_STATE.labels(deployment, each.value).set(
                1 if each is state.breaker else 0
            )
        metrics.LLM_RATE_LIMIT.labels(deployment, "requests").set(
            state.limits.requests_per_minute or 0
        )
        metrics.LLM_RATE_LIMIT.labels(deployment, "tokens").set(state.limits.tokens_per_minute or 0)
        if self._seen.get(deployment, BreakerState.CLOSED) is not state.breaker:
            log.warning("the circuit breaker of %s is %s", deployment, state.breaker.value)
        self._seen[deployment] = state.breaker

    async def aclose(self) -> None:
        """Stop pumping; calls still waiting are cancelled with their tasks."""
        for task in [*self._pumps.values(), *self._background]:
            task.cancel()
        for task in [*self._pumps.values(), *self._background]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _nothing_to_wait_for(
    outcome: CallOutcome, grant: Grant, observation: RateLimitObservation
) -> bool:
    """Whether the report of a call's end may go off the call's path: an answer that
    moves no breaker (not a probe's) and leaves the provider with requests and tokens
    to spare changes nothing the next call must wait for. A failure, a 429, a probe's
    end or an exhausted limit is reported before the caller goes on (its retry, or its
    next call, then asks a gate that knows)."""
    return (
        outcome is CallOutcome.OK
        and not grant.probe
        and observation.retry_after_s is None
        and observation.remaining_requests != 0
        and observation.remaining_tokens != 0
    )


def _deadline_passed(deployment: str) -> DeadlineExceeded:
    return DeadlineExceeded(
        f"the workflow's deadline passed while its LLM call waited for its turn at {deployment}",
        code="llm_admission_deadline_exceeded",
    )
