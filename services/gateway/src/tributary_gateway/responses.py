"""The answers a route may give besides its own, as OpenAPI ``responses=`` entries.

The document is what a client codes against (and what the schema fuzz test holds
the live gateway to), so every status the gateway can send is listed with the
body and headers it comes with. Routers list those common to all their routes;
a route adds the ones only it can give.
"""

from __future__ import annotations

from typing import Any

from tributary_gateway.schemas import Invalid, Problem

__all__ = ["BODY_ERRORS", "COMMON_ERRORS", "RATE_LIMITED", "Responses"]

Responses = dict[int | str, dict[str, Any]]


def _header(description: str, *, required: bool) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": {"type": "string"}}


_RETRY_AFTER = _header("Seconds to wait before retrying.", required=True)

COMMON_ERRORS: Responses = {
    401: {
        "model": Problem,
        "description": "No API key, or one malformed, unknown or revoked.",
        "headers": {
            "WWW-Authenticate": _header(
                '`Bearer`, or `Bearer error="invalid_token"` for a key not accepted.',
                required=True,
            )
        },
    },
    422: {
        "model": Invalid,
        "description": "The request is malformed, or asks for more than a bound; the detail "
        "says what is wrong.",
    },
    503: {
        "model": Problem,
        "description": "The workflow store (Redis) is unavailable; retry after `Retry-After`.",
        "headers": {"Retry-After": _RETRY_AFTER},
    },
}
"""What any ``/v1`` route may answer: no valid key, a malformed request, Redis away."""

RATE_LIMITED: Responses = {
    429: {
        "model": Problem,
        "description": "Too many requests from this API key; retry after `Retry-After`.",
        "headers": {"Retry-After": _RETRY_AFTER},
    }
}

BODY_ERRORS: Responses = {
    400: {"model": Problem, "description": "The request body is not JSON text (not UTF-8)."},
    413: {"model": Problem, "description": "The request body is larger than allowed."},
}
"""What a route that reads a request body may answer before validating it."""
