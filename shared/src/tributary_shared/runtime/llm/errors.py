"""Mapping SDK exceptions and suspicious completions onto the error taxonomy.

Messages are written for users: they name the problem, never the provider's
raw response body or the endpoint's hostname.
"""

from __future__ import annotations

import openai

from tributary_shared.core.errors import FatalError, ModelError, TransientError, TributaryError


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
        if exc.status_code >= 500 or exc.status_code in (408, 409):
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


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def check_finish(finish_reason: str | None, refusal: str | None) -> None:
    """Completions that 'succeed' but are unusable; the SDK raises nothing for these."""
    if refusal:
        raise ModelError("the model refused the request", code="llm_refused")
    if finish_reason == "length":
        raise ModelError("the model's output was cut off at its length limit", code="llm_truncated")
    if finish_reason == "content_filter":
        raise ModelError("the model's output was withheld by a content filter", code="llm_filtered")
