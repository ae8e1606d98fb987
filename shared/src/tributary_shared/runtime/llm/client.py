"""The LLM client every service uses: one AsyncOpenAI per process, retries here.

The SDK's own retries are off (``max_retries=0``) so that retries happen in one
place, with backoff and jitter that honour ``Retry-After`` (bounded), and are
counted by error class. Every call carries an explicit timeout.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import httpx2
import openai
from openai import AsyncOpenAI, DefaultAsyncHttpxClient
from pydantic import BaseModel
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from tributary_shared.core.errors import FatalError, TransientError
from tributary_shared.core.events import TokenUsage
from tributary_shared.runtime import metrics
from tributary_shared.runtime.llm.errors import check_finish, classify_sdk_error
from tributary_shared.runtime.llm.structured import complete_structured
from tributary_shared.runtime.settings import ConfigurationError, LLMSettings

log = logging.getLogger(__name__)
_CONNECTIONS_PER_POOL = 250

Role = Literal["planner", "agent", "synthesizer"]
OutputT = TypeVar("OutputT", bound=BaseModel)
Message = dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Completion:
    content: str | None
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str
    model: str
    usage: TokenUsage = field(default_factory=TokenUsage)

    def as_assistant_message(self) -> Message:
        message: Message = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in self.tool_calls
            ]
        return message


class LLMClient:
    def __init__(self, settings: LLMSettings) -> None:
        if settings.api_key is None:
            raise ConfigurationError(
                "invalid configuration: TRIBUTARY_LLM_API_KEY (or OPENAI_API_KEY) is not set"
            )
        self._settings = settings
        self._cooling_until: dict[str, float] = {}
        # Agent steps wait on the model most of the time: the connection pool,
        # not the CPU, bounds how many run at once. The HTTP pool does work in
        # proportion to its size on every request, so a large budget of
        # connections is split over several small pools, used in turn.
        shards = max(1, math.ceil(settings.max_connections / _CONNECTIONS_PER_POOL))
        per_pool = math.ceil(settings.max_connections / shards)
        self._clients = [
            AsyncOpenAI(
                base_url=settings.base_url,
                api_key=settings.api_key.get_secret_value(),
                max_retries=0,
                timeout=settings.timeout_s,
                http_client=DefaultAsyncHttpxClient(
                    limits=httpx2.Limits(
                        max_connections=per_pool, max_keepalive_connections=per_pool
                    ),
                    timeout=settings.timeout_s,
                ),
            )
            for _ in range(shards)
        ]
        self._next_client = itertools.cycle(self._clients)

    async def close(self) -> None:
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
    ) -> Completion:
        """One completion; raises the taxonomy's errors.

        Each model in ``models`` (default: the role's model) is tried with
        bounded retries on transient errors; the next one takes over when they
        run out or when the endpoint does not know the model.
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
                )
            except (TransientError, FatalError) as error:
                can_fall_back = (
                    isinstance(error, TransientError) or error.code == "llm_model_not_found"
                )
                if not can_fall_back or position == len(chain) - 1:
                    raise
                self._cooling_until[model] = time.monotonic() + self._settings.fallback_cooldown_s
                metrics.LLM_FALLBACKS_TOTAL.labels(role, error.code).inc()
                log.warning(
                    "falling back from %s to %s after %s", model, chain[position + 1], error.code
                )
        raise AssertionError("unreachable")

    async def structured(
        self,
        *,
        role: Role,
        messages: Sequence[Message],
        output: type[OutputT],
        schema_name: str,
        models: Sequence[str] | None = None,
    ) -> tuple[OutputT, TokenUsage]:
        async def once(
            conversation: Sequence[Message], response_format: dict[str, Any]
        ) -> Completion:
            return await self.complete(
                role=role, messages=conversation, response_format=response_format, models=models
            )

        return await complete_structured(
            once, messages=messages, output=output, schema_name=schema_name
        )

    async def _with_retries(
        self,
        *,
        role: Role,
        model: str,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] | None,
        response_format: dict[str, Any] | None,
        max_tokens: int | None,
    ) -> Completion:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._settings.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(TransientError),
            before_sleep=lambda state: _count_retry(role, state),
            reraise=True,
        )
        completion: Completion | None = None
        async for attempt in retrying:
            with attempt:
                completion = await self._once(
                    role=role,
                    model=model,
                    messages=messages,
                    tools=tools,
                    response_format=response_format,
                    max_tokens=max_tokens,
                )
        assert completion is not None
        return completion

    async def _once(
        self,
        *,
        role: Role,
        model: str,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] | None,
        response_format: dict[str, Any] | None,
        max_tokens: int | None = None,
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

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        exponential = min(self._settings.max_backoff_s, 0.5 * 2 ** (state.attempt_number - 1))
        jittered = exponential / 2 + _jitter(exponential / 2)
        if isinstance(exc, TransientError) and exc.retry_after_s is not None:
            return float(min(self._settings.max_backoff_s, max(exc.retry_after_s, jittered)))
        return float(jittered)


def _jitter(upper: float) -> float:
    return random.uniform(0, upper)


def _count_retry(role: Role, state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    error_class = getattr(exc, "error_class", "internal")
    metrics.LLM_RETRIES_TOTAL.labels(role, str(error_class)).inc()
