"""Mapping SDK exceptions and suspicious completions onto the error taxonomy.

Messages are written for users: they name the problem, never the provider's
raw response body or the endpoint's hostname.

``closed_before_answering`` tells one connection failure apart from the rest:
the server closed the connection without sending a single byte of a response.
That is what a client sees when it sends a request on a pooled keep-alive
connection at the moment the server closes it for being idle, which says
nothing about the endpoint's health; the client sends such a request again at
once instead of counting an outage (``client.LLMClient``).
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from datetime import UTC

import httpx2
import openai

from tributary_shared.core.errors import FatalError, ModelError, TransientError, TributaryError

__all__ = [
    "CONNECTION_DROPPED",
    "check_finish",
    "classify_sdk_error",
    "closed_before_answering",
    "dropped_before_answer",
    "retry_after_s",
]

CONNECTION_DROPPED = "llm_connection_dropped"
"""The code of a try whose connection the server closed before answering, sent again
at once. Not a provider outage: it never reaches the breaker or the call's retries."""

_NOTHING_ANSWERED = "Server disconnected without sending a response"
"""httpcore's words (``_async/http11.py``) when an HTTP/1.1 connection reads end-of-file
before any byte of the response; httpx keeps them when it maps the error to its
``RemoteProtocolError``, which the SDK wraps in ``APIConnectionError``. httpx's other
remote protocol errors (a malformed or cut-off response) came after an answer began,
so they are not this."""


def closed_before_answering(exc: BaseException) -> bool:
    """True when ``exc``, or an error behind it, says the server closed the connection
    before sending any response: the request went unanswered and nothing was used.

    Connections refused, names that do not resolve, resets, timeouts and answers cut
    off midway are not this: they may mean the endpoint is away.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, httpx2.RemoteProtocolError) and str(current).startswith(
            _NOTHING_ANSWERED
        ):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def dropped_before_answer() -> TransientError:
    """What a try that ``closed_before_answering`` is recorded with."""
    return TransientError(
        "the LLM endpoint closed the connection before answering; the request was sent again",
        code=CONNECTION_DROPPED,
    )


def classify_sdk_error(exc: Exception, *, model: str) -> TributaryError:
    if isinstance(exc, openai.APITimeoutError):
        return TransientError("the LLM request timed out", code="llm_timeout")
    if isinstance(exc, openai.APIConnectionError):
        return TransientError("the LLM endpoint could not be reached", code="llm_unavailable")
    if isinstance(exc, openai.RateLimitError):
        return TransientError(
            "the LLM endpoint is rate limiting requests",
            code="llm_rate_limited",
            retry_after_s=_retry_after(exc),
        )
    if isinstance(exc, openai.AuthenticationError):
        return FatalError("the LLM endpoint rejected the API key", code="llm_auth_failed")
    if isinstance(exc, openai.PermissionDeniedError):
        return FatalError(
            "the API key may not use this model or endpoint", code="llm_permission_denied"
        )
    if isinstance(exc, openai.NotFoundError):
        return FatalError(
            f"model {model!r} is not available at the LLM endpoint", code="llm_model_not_found"
        )
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500 or exc.status_code in (408, 409) or _overloaded(exc):
            return TransientError(
                f"the LLM endpoint failed (HTTP {exc.status_code})",
                code="llm_unavailable",
                retry_after_s=_retry_after(exc),
            )
        return FatalError(
            f"the LLM endpoint refused the request (HTTP {exc.status_code})",
            code="llm_request_rejected",
        )
    return TransientError("the LLM request failed unexpectedly", code="llm_unavailable")


def _overloaded(exc: openai.APIStatusError) -> bool:
    """A provider that says it is overloaded, whatever status it sends it with
    (Anthropic's ``overloaded_error``): it will answer again later."""
    return any("overloaded" in str(part).lower() for part in (exc.code, exc.type))


def _retry_after(exc: openai.APIStatusError) -> float | None:
    return retry_after_s(exc.response.headers, now=time.time())


def retry_after_s(headers: Mapping[str, str], *, now: float) -> float | None:
    """Seconds the server asks the client to wait before trying again, or None.

    ``retry-after-ms`` (OpenAI's and Azure's, finer) wins over ``Retry-After``,
    which is either seconds or an HTTP date. Unparseable or negative values
    count as absent.
    """
    millis = _number(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT, whether or not it says so
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number >= 0 and math.isfinite(number) else None


def check_finish(finish_reason: str | None, refusal: str | None) -> None:
    """Completions that 'succeed' but are unusable; the SDK raises nothing for these."""
    if refusal:
        raise ModelError("the model refused the request", code="llm_refused")
    if finish_reason == "length":
        raise ModelError("the model's output was cut off at its length limit", code="llm_truncated")
    if finish_reason == "content_filter":
        raise ModelError("the model's output was withheld by a content filter", code="llm_filtered")
