"""The LLM client every service uses: one AsyncOpenAI per process, retries here.

The SDK's own retries are off (``max_retries=0``) so that recovery happens in
one place and follows the error table (``tributary_shared.core.errors``):
which errors are retried and with what backoff (``Retry-After`` honoured up
to the cap), and which hand the call to the next model. Retries and
fallbacks are counted by error class. Every call carries an explicit timeout.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import random
import time
from collections.abc import Sequence
from typing import Any

import httpx2
import openai
from openai import AsyncOpenAI, DefaultAsyncHttpxClient

from tributary_shared.core.completions import CallContext, Completion, Message, Role, ToolCall
from tributary_shared.core.errors import TransientError, TributaryError, recovery_for, retry_delay
from tributary_shared.core.events import TokenUsage
from tributary_shared.runtime import metrics
from tributary_shared.runtime.llm.admission import UNPACED, CallAdmission, note_rate_limit_headers
from tributary_shared.runtime.llm.errors import check_finish, classify_sdk_error
from tributary_shared.runtime.settings import ConfigurationError, LLMSettings

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
        if settings.api_key is None:
            raise ConfigurationError(
                "invalid configuration: TRIBUTARY_LLM_API_KEY (or OPENAI_API_KEY) is not set"
            )
        self._settings = settings
        self._admission = admission or UNPACED
        self._cooling_until: dict[str, float] = {}
        self._owns_http_clients = http_client is None
        self._clients = [
            AsyncOpenAI(
                base_url=settings.base_url,
                api_key=settings.api_key.get_secret_value(),
                max_retries=0,
                timeout=settings.timeout_s,
                http_client=pool,
            )
            for pool in ([http_client] if http_client is not None else _pools(settings))
        ]
        self._next_client = itertools.cycle(self._clients)

    async def close(self) -> None:
        if not self._owns_http_clients:
            return
        for client in self._clients:
            await client.close()

    def _skip_cooling(self, chain: list[str]) -> list[str]:
        """A model that just failed over is skipped for a while (a circuit breaker),
        unless it is the last one left."""
        now = time.monotonic()
        healthy = [m for m in chain if self._cooling_until.get(m, 0.0) <= now]
        return healthy or chain[-1:]

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
    ) -> Completion:
        """One completion; raises the error tree's errors.

        Each model in ``models`` (default: the role's model) is tried with the
        retries its errors allow; the next one takes over when the error
        table says the failure may fall back.
        """
        chain = self._skip_cooling(list(models or [self._settings.model_for(role)]))
        for position, model in enumerate(chain):
            try:
                return await self._with_retries(
                    role=role,
                    model=model,
                    messages=messages,
                    tools=tools,
                    response_format=response_format,
                    max_tokens=max_tokens,
                    context=context,
                )
            except TributaryError as error:
                if not recovery_for(error).falls_back or position == len(chain) - 1:
                    raise
                self._cooling_until[model] = time.monotonic() + self._settings.fallback_cooldown_s
                metrics.LLM_FALLBACKS_TOTAL.labels(role, error.code).inc()
                log.warning(
                    "falling back from %s to %s after %s", model, chain[position + 1], error.code
                )
        raise AssertionError("unreachable")

    async def _with_retries(
        self,
        *,
        role: Role,
        model: str,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] | None,
        response_format: dict[str, Any] | None,
        max_tokens: int | None,
        context: CallContext | None = None,
    ) -> Completion:
        attempt = 1
        while True:
            try:
                return await self._once(
                    role=role,
                    model=model,
                    messages=messages,
                    tools=tools,
                    response_format=response_format,
                    max_tokens=max_tokens,
                    context=context,
                )
            except TributaryError as error:
                delay = retry_delay(
                    error, attempt, jitter=random.random(), cap_s=self._settings.max_backoff_s
                )
                if delay is None or attempt >= self._settings.max_attempts:
                    raise
                metrics.LLM_RETRIES_TOTAL.labels(role, error.error_class.value).inc()
                await asyncio.sleep(delay)
                attempt += 1

    async def _once(
        self,
        *,
        role: Role,
        model: str,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] | None,
        response_format: dict[str, Any] | None,
        max_tokens: int | None = None,
        context: CallContext | None = None,
    ) -> Completion:
        kwargs: dict[str, Any] = {}
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        if tools:
            kwargs["tools"] = list(tools)
        if response_format is not None:
            kwargs["response_format"] = response_format
        started = time.perf_counter()
        try:
            async with self._admission.admit(
                deployment=model,
                context=context,
                messages=messages,
                tools=tools,
                max_tokens=max_tokens,
            ):
                started = time.perf_counter()
                response = await next(self._next_client).chat.completions.create(
                    model=model,
                    messages=list(messages),  # type: ignore[arg-type]
                    timeout=self._settings.timeout_s,
                    **kwargs,
                )
        except openai.OpenAIError as exc:
            error = classify_sdk_error(exc, model=model)
            metrics.LLM_REQUEST_SECONDS.labels(model, role, error.code).observe(
                time.perf_counter() - started
            )
            raise error from exc
        metrics.LLM_REQUEST_SECONDS.labels(model, role, "ok").observe(time.perf_counter() - started)
        if not response.choices:
            raise TransientError("the LLM endpoint returned no choices", code="llm_empty_response")
        choice = response.choices[0]
        usage = TokenUsage(
            prompt_tokens=response.usage.prompt_tokens if response.usage else 0,
            completion_tokens=response.usage.completion_tokens if response.usage else 0,
        )
        served_by = response.model or model
        metrics.LLM_TOKENS_TOTAL.labels(model, role, "prompt").inc(usage.prompt_tokens)
        metrics.LLM_TOKENS_TOTAL.labels(model, role, "completion").inc(usage.completion_tokens)
        check_finish(choice.finish_reason, getattr(choice.message, "refusal", None))
        calls = tuple(
            ToolCall(id=call.id, name=call.function.name, arguments=call.function.arguments)
            for call in choice.message.tool_calls or ()
            if call.type == "function"
        )
        return Completion(
            content=choice.message.content,
            tool_calls=calls,
            finish_reason=choice.finish_reason,
            model=served_by,
            usage=usage,
        )


def _pools(settings: LLMSettings) -> list[httpx2.AsyncClient]:
    """Agent steps wait on the model most of the time: the connection pool, not
    the CPU, bounds how many run at once. The HTTP pool does work in proportion
    to its size on every request, so a large budget of connections is split
    over several small pools, used in turn."""
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
