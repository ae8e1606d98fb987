"""Wire format: OpenAI ``chat.completion`` objects, stream chunks, usage and errors.

The shapes follow what the official ``openai`` SDK parses, so clients under test see
exactly what they would see from the real API.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

from .chat_request import ChatRequest
from .models import ErrorSpec, UsageSpec
from .reply import Reply

# Compact separators: smaller bodies, and the same bytes for the same reply.
_SEPARATORS = (",", ":")
STREAM_WORDS_PER_CHUNK = 4
STREAM_ARGUMENT_CHARS_PER_CHUNK = 8
"""Tool-call arguments stream in pieces of this many characters, as real models send them."""
COMPLETION_ID_PREFIX = "chatcmpl-scripted-"

_DEFAULT_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Bad request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to use this model.", "permission_error", None),
    404: ("The model does not exist.", "invalid_request_error", "model_not_found"),
    409: ("Conflict.", "invalid_request_error", None),
    413: ("Request too large.", "invalid_request_error", None),
    422: ("Unprocessable request.", "invalid_request_error", None),
    429: ("Rate limit reached, please retry later.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request.", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
    504: ("Gateway timeout.", "server_error", None),
}


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=_SEPARATORS).encode()


def estimate_tokens(chars: int) -> int:
    """Deterministic token estimate: one token per four characters, rounded up."""
    return math.ceil(chars / 4)


def usage_for(request: ChatRequest, reply: Reply, override: UsageSpec | None) -> dict[str, int]:
    prompt = estimate_tokens(sum(len(text) for text in request.texts))
    completion_chars = len(reply.content or "") + len(reply.refusal or "")
    completion_chars += sum(len(call.name) + len(call.arguments) for call in reply.tool_calls)
    completion = estimate_tokens(completion_chars)
    total: int | None = None
    if override is not None:
        if override.prompt_tokens is not None:
            prompt = override.prompt_tokens
        if override.completion_tokens is not None:
            completion = override.completion_tokens
        total = override.total_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion if total is None else total,
    }


def tool_call_id(completion_id: str, index: int) -> str:
    return f"call_{completion_id.removeprefix(COMPLETION_ID_PREFIX)}_{index}"


def _tool_calls(reply: Reply, completion_id: str) -> list[dict[str, Any]]:
    return [
        {
            "id": call.id or tool_call_id(completion_id, index),
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments},
        }
        for index, call in enumerate(reply.tool_calls)
    ]


def completion_body(
    *, completion_id: str, created: int, model: str, reply: Reply, usage: dict[str, int]
) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` object."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.content,
        "refusal": reply.refusal,
        "annotations": [],
    }
    if reply.tool_calls:
        message["tool_calls"] = _tool_calls(reply, completion_id)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": reply.effective_finish_reason,
            }
        ],
        "usage": usage,
        "system_fingerprint": None,
    }


def _pieces(text: str) -> list[str]:
    """Split text into a few words per piece; the pieces concatenate back to ``text``."""
    words = text.split(" ")
    return [
        " ".join(words[start : start + STREAM_WORDS_PER_CHUNK])
        + (" " if start + STREAM_WORDS_PER_CHUNK < len(words) else "")
        for start in range(0, len(words), STREAM_WORDS_PER_CHUNK)
    ]


def _argument_pieces(arguments: str) -> list[str]:
    size = STREAM_ARGUMENT_CHARS_PER_CHUNK
    return [arguments[start : start + size] for start in range(0, len(arguments), size)]


def stream_events(
    *,
    completion_id: str,
    created: int,
    model: str,
    reply: Reply,
    usage: dict[str, int],
    include_usage: bool,
) -> Iterator[bytes]:
    """Server-sent events of a streamed completion, ending with ``data: [DONE]``."""

    def event(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if include_usage:
            # OpenAI sends ``usage: null`` on every chunk but the last when usage is asked for.
            chunk["usage"] = None
        return b"data: " + dumps(chunk) + b"\n\n"

    yield event({"role": "assistant", "content": "", "refusal": None})
    if reply.content:
        for piece in _pieces(reply.content):
            yield event({"content": piece})
    if reply.refusal:
        for piece in _pieces(reply.refusal):
            yield event({"refusal": piece})
    for index, call in enumerate(_tool_calls(reply, completion_id)):
        header = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
        yield event({"tool_calls": [{"index": index, **header}]})
        for piece in _argument_pieces(call["function"]["arguments"]):
            arguments = {"arguments": piece}
            yield event({"tool_calls": [{"index": index, "function": arguments}]})
    yield event({}, reply.effective_finish_reason)
    if include_usage:
        final = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": usage,
        }
        yield b"data: " + dumps(final) + b"\n\n"
    yield b"data: [DONE]\n\n"


def error_body(status: int, spec: ErrorSpec | None = None) -> dict[str, Any]:
    """OpenAI's error envelope; fields not given get defaults that fit the status."""
    if status in _DEFAULT_ERRORS:
        default_message, default_type, default_code = _DEFAULT_ERRORS[status]
    elif status >= 500:
        default_message, default_type, default_code = ("Server error.", "server_error", None)
    else:
        default_message, default_type, default_code = (
            "Request failed.",
            "invalid_request_error",
            None,
        )
    spec = spec or ErrorSpec()
    return {
        "error": {
            "message": spec.message if spec.message is not None else default_message,
            "type": spec.type if spec.type is not None else default_type,
            "param": spec.param,
            "code": spec.code if spec.code is not None else default_code,
        }
    }
