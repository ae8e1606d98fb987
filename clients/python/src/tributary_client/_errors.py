"""The exceptions the client raises, one per kind of answer a caller handles differently.

    TributaryError                  every error of this package
    ├── ConnectionError             no answer: refused, reset, timed out, dropped
    ├── WaitTimeoutError            ``wait()`` ran out of time (also a builtin TimeoutError)
    └── APIError                    the gateway answered with an error status
        ├── BadRequestError         400
        ├── AuthenticationError     401: no key, or one unknown or revoked
        ├── PermissionDeniedError   403: the key lacks the scope, or names another tenant
        ├── NotFoundError           404: no such workflow that the key's tenant owns
        ├── ConflictError           409: e.g. cancelling a workflow that has ended
        ├── PayloadTooLargeError    413
        ├── ValidationError         422: the request is malformed or over a bound
        ├── RateLimitError          429: retry after ``retry_after`` seconds
        └── ServerError             5xx
            └── UnavailableError    503: Redis or Kafka away; retry after ``retry_after``

``code`` is a stable string per class (``"not_found"``...), or the ``code`` the
gateway put in its error body when it sends one; ``detail`` is the gateway's
explanation. ``ConnectionError`` shadows the builtin of that name only inside
this package's namespace: import it as ``tributary_client.ConnectionError``.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "ConnectionError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "TributaryError",
    "UnavailableError",
    "ValidationError",
    "WaitTimeoutError",
    "error_from_response",
    "retry_after_seconds",
]


class TributaryError(Exception):
    """Every error of this package; ``status`` is None when no HTTP answer came."""

    code: ClassVar[str] = "error"

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(detail if status is None else f"{status} {detail}")
        self.detail = detail
        self.status = status
        self.retry_after = retry_after
        self.body = body
        if code is not None:
            self.code = code  # type: ignore[misc]  # the instance's own code shadows the class's


class ConnectionError(TributaryError):
    """The gateway gave no answer: connection refused, reset or dropped, or a timeout."""

    code = "connection_error"


class WaitTimeoutError(TributaryError, builtins.TimeoutError):
    """``wait()`` (or a stream with a deadline) ran out of time before the workflow ended."""

    code = "wait_timeout"


class APIError(TributaryError):
    """The gateway answered with an error status."""

    status: int


class BadRequestError(APIError):
    code = "bad_request"


class AuthenticationError(APIError):
    code = "authentication_failed"


class PermissionDeniedError(APIError):
    code = "permission_denied"


class NotFoundError(APIError):
    code = "not_found"


class ConflictError(APIError):
    code = "conflict"


class PayloadTooLargeError(APIError):
    code = "payload_too_large"


class ValidationError(APIError):
    code = "validation_failed"


class RateLimitError(APIError):
    code = "rate_limited"


class ServerError(APIError):
    code = "server_error"


class UnavailableError(ServerError):
    code = "unavailable"


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: ValidationError,
    429: RateLimitError,
    503: UnavailableError,
}


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds, when it is a number (the gateway sends seconds)."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: rare enough to fall back on the client's own backoff
    return max(seconds, 0.0)


def error_from_response(response: httpx.Response) -> APIError:
    """The exception for an error answer; the response's body must have been read."""
    body = _body(response)
    detail, code = _detail_and_code(body, response)
    kind = _BY_STATUS.get(response.status_code)
    if kind is None:
        kind = ServerError if response.status_code >= 500 else APIError
    return kind(
        detail,
        status=response.status_code,
        code=code,
        retry_after=retry_after_seconds(response.headers),
        body=body,
    )


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text


def _detail_and_code(body: Any, response: httpx.Response) -> tuple[str, str | None]:
    if not isinstance(body, dict):
        return (str(body) or response.reason_phrase or "error"), None
    detail = body.get("detail")
    code = body.get("code")
    if isinstance(detail, list):  # FastAPI's validation errors: one entry per problem
        detail = "; ".join(_problem(item) for item in detail)
    return str(detail if detail is not None else body), code if isinstance(code, str) else None


def _problem(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    where = ".".join(str(part) for part in item.get("loc", ()))
    return f"{where}: {item.get('msg', '')}" if where else str(item.get("msg", item))
