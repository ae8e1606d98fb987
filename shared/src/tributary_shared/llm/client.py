"""The LLM client every service uses: one AsyncOpenAI per process, retries here.

The SDK's own retries are off (``max_retries=0``) so that retries happen in one
place, with backoff and jitter that honour ``Retry-After`` (bounded), and are
counted by error class. Every call carries an explicit timeout.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import openai
from openai import AsyncOpenAI
from pydantic import BaseModel, ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from tributary_shared import metrics
from tributary_shared.errors import ModelError, TransientError
from tributary_shared.events import TokenUsage
from tributary_shared.llm.errors import check_finish, classify_sdk_error
from tributary_shared.settings import ConfigurationError, LLMSettings

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
        self._client = AsyncOpenAI(
            base_url=settings.base_url,
            api_key=settings.api_key.get_secret_value(),
            max_retries=0,
            timeout=settings.timeout_s,
        )

    async def close(self) -> None:
        await self._client.close()

    async def complete(
        self,
        *,
        role: Role,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
        model: str | None = None,
    ) -> Completion:
        """One completion, retried on transient errors; raises the taxonomy's errors."""
        chosen = model or self._settings.model_for(role)
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
                    model=chosen,
                    messages=messages,
                    tools=tools,
                    response_format=response_format,
                )
        assert completion is not None
        return completion

    async def structured(
        self,
        *,
        role: Role,
        messages: Sequence[Message],
        output: type[OutputT],
        schema_name: str,
    ) -> tuple[OutputT, TokenUsage]:
        """A JSON-schema completion validated by ``output``; one corrective re-prompt."""
        response_format = {
            "type": "json_schema",
            "json_schema": {"name": schema_name, "schema": output.model_json_schema()},
        }
        conversation = list(messages)
        usage = TokenUsage()
        for attempt in (1, 2):
            completion = await self.complete(
                role=role, messages=conversation, response_format=response_format
            )
            usage = usage + completion.usage
            try:
                return output.model_validate_json(completion.content or ""), usage
            except ValidationError as exc:
                if attempt == 2:
                    raise ModelError(
                        f"the model's {schema_name} did not match its schema",
                        code="llm_schema_mismatch",
                    ) from exc
                conversation += [
                    {"role": "assistant", "content": completion.content or ""},
                    {
                        "role": "user",
                        "content": "Your reply did not match the required JSON schema: "
                        f"{_summarise(exc)}. Reply again with JSON that matches it exactly.",
                    },
                ]
        raise AssertionError("unreachable")

    async def _once(
        self,
        *,
        role: Role,
        model: str,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] | None,
        response_format: dict[str, Any] | None,
    ) -> Completion:
        kwargs: dict[str, Any] = {}
        if tools:
            kwargs["tools"] = list(tools)
        if response_format is not None:
            kwargs["response_format"] = response_format
        started = time.perf_counter()
        try:
            response = await self._client.chat.completions.create(
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


def _summarise(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "<root>"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
