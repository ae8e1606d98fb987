"""The answers a route may give besides its own, as OpenAPI ``responses=`` entries.

The document is what a client codes against (and what the schema fuzz test holds
the live gateway to), so every status the gateway can send is listed with the
body and headers it comes with, and with examples of that body (``answer``).
Routers list those common to all their routes; a route adds the ones only it can
give, and the examples of its own success (``success``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from tributary_gateway import error_examples as errors
from tributary_gateway.examples import Example, openapi_examples
from tributary_gateway.schemas import Invalid, Problem

__all__ = [
    "BODY_ERRORS",
    "COMMON_ERRORS",
    "RATE_LIMITED",
    "Responses",
    "answer",
    "success",
]

Responses = dict[int | str, dict[str, Any]]


def answer(
    description: str,
    *examples: Example,
    model: type[BaseModel] = Problem,
    headers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``responses=`` entry: the body's model, what the status means, and examples of it."""
    entry: dict[str, Any] = {
        "model": model,
        "description": description,
        "content": {"application/json": {"examples": openapi_examples(*examples)}},
    }
    if headers:
        entry["headers"] = headers
    return entry


def success(
    *examples: Example,
    media_type: str = "application/json",
    schema: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Examples for a route's own status. Its body's schema is the ``response_model``'s
    unless ``schema`` is given (a body that is not JSON: ``{"type": "string"}``)."""
    content: dict[str, Any] = {"examples": openapi_examples(*examples)}
    if schema is not None:
        content["schema"] = schema
    return {"content": {media_type: content}}


def _header(description: str, *, required: bool) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": {"type": "string"}}


_RETRY_AFTER = _header("Seconds to wait before retrying.", required=True)

COMMON_ERRORS: Responses = {
    401: answer(
        "No API key, or one malformed, unknown or revoked.",
        errors.NO_KEY,
        errors.INVALID_KEY,
        headers={
            "WWW-Authenticate": _header(
                '`Bearer`, or `Bearer error="invalid_token"` for a key not accepted.',
                required=True,
            )
        },
    ),
    # A route with parameters or a body lists its own 422 with examples of them.
    422: answer(
        "The request is malformed, or asks for more than a bound; the detail says what is wrong.",
        errors.LIST_LIMIT_OUT_OF_BOUNDS,
        model=Invalid,
    ),
    503: answer(
        "The workflow store (Redis) is unavailable; retry after `Retry-After`.",
        errors.STORE_UNAVAILABLE,
        headers={"Retry-After": _RETRY_AFTER},
    ),
}
"""What any ``/v1`` route may answer: no valid key, a malformed request, Redis away."""

RATE_LIMITED: Responses = {
    429: answer(
        "Too many requests from this API key; retry after `Retry-After`.",
        errors.RATE_LIMITED,
        headers={"Retry-After": _RETRY_AFTER},
    )
}

BODY_ERRORS: Responses = {
    400: answer("The request body is not JSON text (not UTF-8).", errors.BODY_NOT_UTF8),
    413: answer("The request body is larger than allowed.", errors.BODY_TOO_LARGE),
}
"""What a route that reads a request body may answer before validating it."""
