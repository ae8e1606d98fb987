"""The LLM client every service uses: one per process, retries and fallbacks here.

The SDK's own retries are off (``max_retries=0``) so that recovery happens in
one place and follows the error table (``tributary_shared.core.errors``) and
the call's plan (``chain.CallPlan``): which errors are tried again, after what
backoff (``Retry-After`` waited out), when the next deployment of the chain
takes over, and how long a call waits out an endpoint that keeps failing (its
patience, and its workflow's deadline). Every request carries an explicit
timeout, never longer than what is left before the deadline.

Each deployment (``TRIBUTARY_LLM_DEPLOYMENTS``; the default one is
``TRIBUTARY_LLM_BASE_URL``) has its own SDK client with its own endpoint and
key; they share the process's HTTP connection pools. ``_once`` is the one
place a request leaves the process: one try of the call's plan at one
deployment, sent once that deployment's admission gate lets it go (its shared
circuit breaker, rate limits and fair queue; see ``runtime.llm.admission``).
With ``TRIBUTARY_LLM_STREAM`` it asks for a streamed answer and assembles the
same completion from its chunks (``answer.StreamedAnswer``), timing the first
token.

A request whose connection the server closed before sending any response
(``errors.closed_before_answering``: the pool reused a kept-alive connection
as the server closed it for being idle) was not answered and used nothing.
``_once`` sends it again at once, on another connection, still inside the
gate's block: neither the breaker nor the call's plan hears of it, and the
call's record shows the dropped try (``llm_connection_dropped``). Dropped again,
it fails as any unreachable endpoint does (``llm_unavailable``, an outage).

While a call waits for its model, it tells ``on_wait`` (at its first pause,
then at most every ``TRIBUTARY_LLM_WAIT_NOTICE_INTERVAL_S``), which the
metered layer turns into the workflow's ``llm.waiting`` events; a listener
that answers that the workflow has ended stops the call (``workflow_ended``),
so a cancelled workflow's planner or synthesizer does not wait on.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx2
import openai
from openai import AsyncOpenAI, DefaultAsyncHttpxClient

from tributary_shared.core.completions import (
    CallContext,
    Completion,
    DeltaListener,
    Message,
    ModelWait,
    Role,
    ToolCall,
    TryListener,
    WaitListener,
)
from tributary_shared.core.errors import (
    DeadlineExceeded,
    FatalError,
    LogicError,
    TransientError,
    TributaryError,
)
from tributary_shared.core.events import LLMTry, TokenUsage
from tributary_shared.runtime import metrics
from tributary_shared.runtime.llm.admission import UNPACED, CallAdmission, note_rate_limit_headers
from tributary_shared.runtime.llm.answer import Answer, StreamedAnswer, answer_of
from tributary_shared.runtime.llm.chain import (
    CallPlan,
    Cooldowns,
    GiveUp,
    HeldBack,
    RetryPolicy,
    Target,
    TryAgain,
    chain_of,
)
from tributary_shared.runtime.llm.errors import (
    CONNECTION_DROPPED,
    check_finish,
    classify_sdk_error,
    closed_before_answering,
    dropped_before_answer,
)
from tributary_shared.runtime.settings import ConfigurationError, Deployment, LLMSettings
from tributary_shared.runtime.tracing import traced_llm_call

__all__ = ["Completion", "LLMClient", "Message", "Role", "ToolCall"]

log = logging.getLogger(__name__)
_CONNECTIONS_PER_POOL = 250


class LLMClient:
    def __init__(
        self,
        settings: LLMSettings,
        *,
        http_client: httpx2.AsyncClient | None = None,
        admission: CallAdmission | None = None,
    ) -> None:
        """``http_client``, when given, carries every request instead of the pooled
        clients (tests pass one over an in-process transport); it stays the
        caller's to close. ``admission`` decides when each request may go (the
        deployment's shared breaker, rate limits and fair queue); without it
        every request goes at once."""
        self._settings = settings
        self._admission = admission or UNPACED
        self._policy = RetryPolicy.of(settings)
        self._cooldowns = Cooldowns(settings.fallback_cooldown_s)
        self._owned_pools = [] if http_client is not None else _pools(settings)
        pools = [http_client] if http_client is not None else self._owned_pools

        def sdk_clients(deployment: Deployment) -> Iterator[AsyncOpenAI]:
            return itertools.cycle([_sdk_client(deployment, settings, pool) for pool in pools])

        # The models with no deployments of their own share TRIBUTARY_LLM_BASE_URL's clients.
        default = _default_endpoint(settings)
        self._default_clients = sdk_clients(default) if default is not None else None
        self._clients = {d.id: sdk_clients(d) for d in _configured_deployments(settings)}

    async def close(self) -> None:
        for pool in self._owned_pools:
            await pool.aclose()

    async def complete(
        self,
        *,
        role: Role,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
        models: Sequence[str] | None = None,
        max_tokens: int | None = None,
        context: CallContext | None = None,
        on_wait: WaitListener | None = None,
        on_try: TryListener | None = None,
        on_delta: DeltaListener | None = None,
        stream: bool | None = None,
    ) -> Completion:
        """One completion; raises the error tree's errors.

        The models in ``models`` (default: the role's model) are tried in order,
        each at its deployments in order, as ``chain.CallPlan`` says; a call for
        a workflow (``context``) waits no longer than its deadline, and then
        raises ``DeadlineExceeded``. With ``TRIBUTARY_LLM_STREAM`` (or ``stream``,
        which overrides it for this call) the answer is streamed, and ``on_delta``
        hears each piece of its text as it arrives.
        """
        streamed = self._settings.stream if stream is None else stream
        chain = chain_of(self._settings, models or [self._settings.model_for(role)])
        plan = CallPlan(
            self._cooldowns.order(chain, now=time.monotonic()),
            self._policy,
            deadline_at=context.deadline_at if context is not None else None,
        )
        waiting = _WaitNotices(on_wait, interval_s=self._settings.wait_notice_interval_s)
        for_workflow = context or CallContext(workflow_id="", tenant_id="default")
        while True:
            now = time.time()
            stop = plan.stop_before_try(now)
            if stop is not None:
                raise stop
            target = plan.target
            held = _HeldNotices(waiting, plan, target, interval_s=waiting.interval_s)
            try:
                attempt = held.around(
                    self._once(
                        role=role,
                        target=target,
                        messages=messages,
                        tools=tools,
                        response_format=response_format,
                        max_tokens=max_tokens,
                        # The gate keeps the try no longer than the plan allows.
                        context=replace(for_workflow, deadline_at=plan.admission_deadline(now)),
                        timeout_s=plan.timeout_s(now, request_timeout_s=self._settings.timeout_s),
                        admitted=held.admitted,
                        on_try=on_try,
                        on_delta=on_delta,
                        stream=streamed,
                    )
                )
                completion = await traced_llm_call(
                    attempt, role=role, model=target.provider_model, deployment=target.deployment.id
                )
            except TributaryError as raised:
                error = _held_back(raised, target, plan)
                step = plan.after_failure(error, now=time.time(), jitter=random.random())
                if isinstance(step, GiveUp):
                    if step.error is raised:
                        raise
                    raise step.error from raised
                self._count(role, error, step)
                await self._wait(step, failed=target, error=error, plan=plan, waiting=waiting)
            else:
                self._cooldowns.recovered(target)
                return completion

    def _count(self, role: Role, error: TributaryError, step: TryAgain) -> None:
        if step.handed_over_from is None:
            metrics.LLM_RETRIES_TOTAL.labels(role, error.error_class.value).inc()
            return
        left = step.handed_over_from
        self._cooldowns.cool(left, now=time.monotonic())
        metrics.LLM_FALLBACKS_TOTAL.labels(role, error.code, left.deployment.id).inc()
        log.warning(
            "handing a call over from %s at %s to %s at %s after %s",
            left.model,
            left.deployment.id,
            step.target.model,
            step.target.deployment.id,
            error.code,
        )

    async def _wait(
        self,
        step: TryAgain,
        *,
        failed: Target,
        error: TributaryError,
        plan: CallPlan,
        waiting: _WaitNotices,
    ) -> None:
        if step.at <= time.time():
            return
        gauge = metrics.LLM_CALLS_WAITING.labels(failed.model)
        gauge.inc()
        try:
            wanted = await waiting.tell(
                ModelWait(
                    model=failed.model,
                    deployment=failed.deployment.id,
                    error=error,
                    attempt=plan.attempts,
                    waiting_since=plan.waiting_since or time.time(),
                    next_try_at=step.at,
                )
            )
            if not wanted:
                raise LogicError(
                    "the workflow ended while its LLM call waited for the model",
                    code="workflow_ended",
                ) from error
            await asyncio.sleep(max(0.0, step.at - time.time()))
        finally:
            gauge.dec()

    async def _once(
        self,
        *,
        role: Role,
        target: Target,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] | None,
        response_format: dict[str, Any] | None,
        max_tokens: int | None,
        context: CallContext | None,
        timeout_s: float,
        admitted: asyncio.Event | None = None,
        on_try: TryListener | None = None,
        on_delta: DeltaListener | None = None,
        stream: bool = False,
    ) -> Completion:
        """One try at one deployment; its failure classified by the error tree. A
        request the server closed its connection on before answering is sent again
        at once within the try (see the module).

        ``context`` names the workflow the attempt is made for (None: none) and the
        latest it may wait for its turn at the deployment's gate; ``admitted`` is
        set once the gate lets it go.
        """
        clients = (
            self._clients.get(target.deployment.id)
            if target.model in self._settings.deployments
            else self._default_clients
        )
        if clients is None:
            raise FatalError(
                f"no API key is configured for model {target.model!r}", code="llm_auth_failed"
            )
        kwargs: dict[str, Any] = {}
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        if tools:
            kwargs["tools"] = list(tools)
        if response_format is not None:
            kwargs["response_format"] = response_format
        model, deployment = target.model, target.deployment.id
        started = time.perf_counter()
        sent_at: float | None = None  # wall time the request left, once it has
        try:
            async with self._admission.admit(
                deployment=deployment,
                context=context,
                messages=messages,
                tools=tools,
                max_tokens=max_tokens,
            ):
                if admitted is not None:
                    admitted.set()
                client = next(clients)
                ends_at = time.perf_counter() + timeout_s
                for resend in range(_RESENDS_AFTER_DROP + 1):
                    started, sent_at = time.perf_counter(), time.time()
                    try:
                        answer = await _sent(
                            client,
                            target=target,
                            role=role,
                            messages=messages,
                            timeout_s=ends_at - started,
                            kwargs=kwargs,
                            on_delta=on_delta,
                            stream=stream,
                            started=started,
                        )
                        break
                    except openai.APIConnectionError as exc:
                        if resend == _RESENDS_AFTER_DROP or not _may_resend(exc, ends_at):
                            raise
                        # Inside the gate's block: the gate hears only how the call
                        # ends, and the call's plan spends no try on it.
                        _dropped(on_try, target, role, sent_at, time.perf_counter() - started)
        except (openai.OpenAIError, _StreamBroken) as exc:
            error = (
                exc.error
                if isinstance(exc, _StreamBroken)
                else classify_sdk_error(exc, model=target.provider_model)
            )
            took_s = time.perf_counter() - started
            metrics.LLM_REQUEST_SECONDS.labels(model, deployment, role, error.code).observe(took_s)
            _tell_try(on_try, target, sent_at, took_s, error)
            raise error from exc
        took_s = time.perf_counter() - started
        metrics.LLM_REQUEST_SECONDS.labels(model, deployment, role, "ok").observe(took_s)
        try:
            completion = _completion_of(answer, target, role=role)
        except TributaryError as unusable:
            _tell_try(on_try, target, sent_at, took_s, unusable)
            raise
        _tell_try(on_try, target, sent_at, took_s, None)
        return completion


_RESENDS_AFTER_DROP = 1
"""How often a request the server closed its connection on before answering is sent
again at once. One: a server that closed an idle kept-alive connection just as the
request went out on it has no reason to close the next connection too; one that does
is failing."""


def _may_resend(exc: openai.APIConnectionError, ends_at: float) -> bool:
    """A request unanswered because its connection closed, with time left to send it
    again. httpcore's pool has closed and dropped that connection, so the request goes
    on another: an idle one that is still open (the pool leaves out those the server
    has visibly closed), or a new one."""
    return closed_before_answering(exc) and time.perf_counter() < ends_at


def _dropped(
    on_try: TryListener | None, target: Target, role: Role, sent_at: float, took_s: float
) -> None:
    """Count and record a try whose connection closed before any answer (it used nothing)."""
    model, deployment = target.model, target.deployment.id
    metrics.LLM_REQUEST_SECONDS.labels(model, deployment, role, CONNECTION_DROPPED).observe(took_s)
    metrics.LLM_DROPPED_CONNECTION_RESENDS_TOTAL.labels(role, deployment).inc()
    log.debug("%s closed the connection before answering; the request goes again", deployment)
    _tell_try(on_try, target, sent_at, took_s, dropped_before_answer())


async def _sent(
    client: AsyncOpenAI,
    *,
    target: Target,
    role: Role,
    messages: Sequence[Message],
    timeout_s: float,
    kwargs: dict[str, Any],
    on_delta: DeltaListener | None,
    stream: bool,
    started: float,
) -> Answer:
    """The answer to one HTTP request, streamed or in one body."""
    if stream:
        return await _streamed(
            client,
            target=target,
            role=role,
            messages=messages,
            timeout_s=timeout_s,
            kwargs=kwargs,
            on_delta=on_delta,
            started=started,
        )
    response = await client.chat.completions.create(
        model=target.provider_model,
        messages=list(messages),  # type: ignore[arg-type]
        timeout=timeout_s,
        **kwargs,
    )
    return answer_of(response)


def _tell_try(
    on_try: TryListener | None,
    target: Target,
    sent_at: float | None,
    took_s: float,
    error: TributaryError | None,
) -> None:
    """Report one HTTP attempt; one the gate never let go (``sent_at`` None) is none."""
    if on_try is None or sent_at is None:
        return
    on_try(
        LLMTry(
            model=target.model,
            deployment=target.deployment.id,
            started_at=datetime.fromtimestamp(sent_at, UTC),
            duration_ms=round(took_s * 1000),
            error=error.to_info() if error is not None else None,
        )
    )


class _StreamBroken(Exception):
    """A streamed answer that failed in a way the SDK raises nothing for."""

    def __init__(self, error: TributaryError) -> None:
        super().__init__(error.message)
        self.error = error


async def _streamed(
    client: AsyncOpenAI,
    *,
    target: Target,
    role: Role,
    messages: Sequence[Message],
    timeout_s: float,
    kwargs: dict[str, Any],
    on_delta: DeltaListener | None,
    started: float,
) -> Answer:
    """The answer of one streamed request, assembled from its chunks.

    The SDK's timeout bounds each read; ``timeout_s`` bounds the whole request,
    however slowly its chunks trickle in. The SDK raises its own errors for a
    connection dropped mid-answer, a read timing out and an error event; an
    answer whose stream ends before its finish reason came was cut off too.
    """
    answer = StreamedAnswer()
    try:
        async with asyncio.timeout(timeout_s):
            stream = await client.chat.completions.create(  # type: ignore[call-overload]
                model=target.provider_model,
                messages=list(messages),
                timeout=timeout_s,
                stream=True,
                stream_options={"include_usage": True},
                **kwargs,
            )
            async with stream:
                async for chunk in _chunks(stream):
                    had_started = answer.started
                    text = answer.add(chunk)
                    if answer.started and not had_started:
                        metrics.LLM_TIME_TO_FIRST_TOKEN_SECONDS.labels(
                            target.model, target.deployment.id, role
                        ).observe(time.perf_counter() - started)
                    if text and on_delta is not None:
                        await _tell_delta(on_delta, text)
    except TimeoutError as exc:
        raise _StreamBroken(
            TransientError("the LLM request timed out", code="llm_timeout")
        ) from exc
    if answer.answer().has_choice and not answer.finished:
        raise _StreamBroken(
            TransientError(
                "the LLM endpoint's stream ended before its answer did", code="llm_unavailable"
            )
        )
    return answer.answer()


async def _chunks(stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The stream's chunks; one the endpoint garbled breaks the stream (a transient fault)."""
    while True:
        try:
            chunk = await anext(stream)
        except StopAsyncIteration:
            return
        except ValueError as exc:  # an event whose data is not JSON
            raise _StreamBroken(
                TransientError("the LLM endpoint sent an unreadable stream", code="llm_unavailable")
            ) from exc
        yield chunk


async def _tell_delta(on_delta: DeltaListener, text: str) -> None:
    try:
        told = on_delta(text)
        if told is not None:
            await told
    except Exception:  # a listener must never cost the call its answer
        log.warning("a streamed text delta could not be delivered", exc_info=True)


def _completion_of(answer: Answer, target: Target, *, role: Role) -> Completion:
    """The completion in an endpoint's answer; raises when it cannot be used."""
    model, deployment = target.model, target.deployment.id
    if not answer.has_choice:
        raise TransientError("the LLM endpoint returned no choices", code="llm_empty_response")
    usage = TokenUsage(
        prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens
    )
    tokens = metrics.LLM_TOKENS_TOTAL
    tokens.labels(model, deployment, role, "prompt").inc(usage.prompt_tokens)
    tokens.labels(model, deployment, role, "completion").inc(usage.completion_tokens)
    check_finish(answer.finish_reason, answer.refusal)
    return Completion(
        content=answer.content,
        tool_calls=answer.tool_calls,
        finish_reason=answer.finish_reason,  # type: ignore[arg-type]
        model=answer.model or target.provider_model,
        usage=usage,
        deployment=deployment,
    )


_ADMISSION_DEADLINE = "llm_admission_deadline_exceeded"
"""The admission gate's code for a call it did not let go before the call's deadline."""


def _held_back(raised: TributaryError, target: Target, plan: CallPlan) -> TributaryError:
    """A gate that kept the try past the bound the plan gave it, before the workflow's
    deadline, held it back: that deployment has no headroom now (``HeldBack``)."""
    if (
        isinstance(raised, DeadlineExceeded)
        and raised.code == _ADMISSION_DEADLINE
        and not plan.deadline_passed(time.time())
    ):
        return HeldBack(target.deployment.id)
    return raised


class _WaitNotices:
    """Tells a call's listener that it waits: at its first pause, then at most every
    ``interval_s``, however short its pauses (never one notice per retry)."""

    def __init__(self, listener: WaitListener | None, *, interval_s: float) -> None:
        self._listener = listener
        self.interval_s = interval_s
        self._last_at: float | None = None

    @property
    def listening(self) -> bool:
        return self._listener is not None

    async def tell(self, wait: ModelWait) -> bool:
        """False when the listener says the call is no longer wanted."""
        now = time.monotonic()
        if self._listener is None:
            return True
        if self._last_at is not None and now - self._last_at < self.interval_s:
            return True
        self._last_at = now
        try:
            return await self._listener(wait)
        except Exception:  # a notice must never cost the call its retry
            log.warning("a wait notice could not be delivered", exc_info=True)
            return True


class _HeldNotices:
    """While a try waits for its turn at its deployment's gate longer than the notice
    interval, the call's listener hears that it waits (the gate decides when it goes)."""

    def __init__(
        self, waiting: _WaitNotices, plan: CallPlan, target: Target, *, interval_s: float
    ) -> None:
        self._waiting = waiting
        self._plan = plan
        self._target = target
        self._interval_s = interval_s
        self.admitted = asyncio.Event()

    async def around(self, attempt: Coroutine[Any, Any, Completion]) -> Completion:
        if not self._waiting.listening:
            return await attempt
        telling = asyncio.create_task(self._tell_while_held())
        try:
            return await attempt
        finally:
            telling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await telling

    async def _tell_while_held(self) -> None:
        since = time.time()
        while True:
            try:
                await asyncio.wait_for(self.admitted.wait(), timeout=self._interval_s)
                return
            except TimeoutError:
                await self._waiting.tell(
                    ModelWait(
                        model=self._target.model,
                        deployment=self._target.deployment.id,
                        error=self._plan.last_error,
                        attempt=self._plan.attempts,
                        waiting_since=self._plan.waiting_since or since,
                        next_try_at=None,
                    )
                )


def _default_endpoint(settings: LLMSettings) -> Deployment | None:
    """``TRIBUTARY_LLM_BASE_URL`` with its key, for the models with no deployments of
    their own; None when it has no key and no routed model needs it (a routed one
    that does stops the process at start)."""
    if settings.api_key is not None:
        return settings.default_deployment("")
    if any(model not in settings.deployments for model in settings.routed_models()):
        raise ConfigurationError(
            "invalid configuration: TRIBUTARY_LLM_API_KEY (or OPENAI_API_KEY) is not set"
        )
    return None


def _configured_deployments(settings: LLMSettings) -> tuple[Deployment, ...]:
    for deployment in settings.configured_deployments():
        if deployment.api_key is None:
            raise ConfigurationError(
                f"invalid configuration: TRIBUTARY_LLM_DEPLOYMENTS: deployment {deployment.id!r} "
                "has no api_key, and TRIBUTARY_LLM_API_KEY (or OPENAI_API_KEY) is not set"
            )
    return settings.configured_deployments()


def _sdk_client(
    deployment: Deployment, settings: LLMSettings, pool: httpx2.AsyncClient
) -> AsyncOpenAI:
    assert deployment.api_key is not None
    return AsyncOpenAI(
        base_url=deployment.base_url,
        api_key=deployment.api_key.get_secret_value(),
        max_retries=0,
        timeout=settings.timeout_s,
        http_client=pool,
    )


def _pools(settings: LLMSettings) -> list[httpx2.AsyncClient]:
    """Agent steps wait on the model most of the time: the connection pool, not
    the CPU, bounds how many run at once. The HTTP pool does work in proportion
    to its size on every request, so a large budget of connections is split
    over several small pools, used in turn (by every deployment's client)."""
    shards = max(1, math.ceil(settings.max_connections / _CONNECTIONS_PER_POOL))
    per_pool = math.ceil(settings.max_connections / shards)
    return [
        DefaultAsyncHttpxClient(
            limits=httpx2.Limits(max_connections=per_pool, max_keepalive_connections=per_pool),
            timeout=settings.timeout_s,
            event_hooks={"response": [note_rate_limit_headers]},
        )
        for _ in range(shards)
    ]
