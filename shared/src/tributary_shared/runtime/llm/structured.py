"""Structured output: a JSON-schema completion validated by a pydantic model.

A reply that does not validate is a model error: it gets the corrective
re-prompts the error table allows (each says what was wrong); once they are
spent, the error is raised.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tributary_shared.core.completions import Completion, Message
from tributary_shared.core.errors import ModelError, recovery_for
from tributary_shared.core.events import TokenUsage

__all__ = ["CompleteOnce", "OutputT", "complete_structured", "json_schema_format"]

OutputT = TypeVar("OutputT", bound=BaseModel)
CompleteOnce = Callable[[Sequence[Message], dict[str, Any]], Awaitable[Completion]]
"""One completion of ``(conversation, response_format)``."""


@functools.cache
def json_schema_format(output: type[BaseModel], schema_name: str) -> dict[str, Any]:
    """Rendered once per model: every structured call sends it."""
    return {
        "type": "json_schema",
        "json_schema": {"name": schema_name, "schema": output.model_json_schema()},
    }


async def complete_structured(
    complete: CompleteOnce,
    *,
    messages: Sequence[Message],
    output: type[OutputT],
    schema_name: str,
) -> tuple[OutputT, TokenUsage]:
    response_format = json_schema_format(output, schema_name)
    conversation = list(messages)
    usage = TokenUsage()
    reprompts = 0
    while True:
        completion = await complete(conversation, response_format)
        usage = usage + completion.usage
        try:
            return output.model_validate_json(completion.content or ""), usage
        except ValidationError as exc:
            error = ModelError(
                f"the model's {schema_name} did not match its schema", code="llm_schema_mismatch"
            )
            if reprompts >= recovery_for(error).reprompts:
                raise error from exc
            reprompts += 1
            conversation += [
                {"role": "assistant", "content": completion.content or ""},
                {
                    "role": "user",
                    "content": "Your reply did not match the required JSON schema: "
                    f"{_summarise(exc)}. Reply again with JSON that matches it exactly.",
                },
            ]


def _summarise(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "<root>"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
