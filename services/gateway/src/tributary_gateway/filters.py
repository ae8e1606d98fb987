"""The query parameters that filter a listing of workflows, read into a ``WorkflowFilter``.

A bad one is answered 422 in FastAPI's own shape (``detail`` lists the errors,
each with ``loc: ["query", <parameter>]``), so a client finds which parameter
to fix the same way as for any other invalid request.
"""

from __future__ import annotations

import re
from datetime import datetime

from fastapi.exceptions import RequestValidationError

from tributary_shared.core.listing import InvalidFilter, WorkflowFilter
from tributary_shared.core.status import WorkflowStatus

__all__ = ["RFC3339_PATTERN", "listing_filter"]

RFC3339_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
"""A date-time of RFC 3339: date, time, optional fraction, and a zone (``Z`` or an offset)."""
_FRACTION = re.compile(r"\.(\d{1,9})")


def listing_filter(
    *,
    statuses: list[WorkflowStatus] | None,
    created_after: str | None,
    created_before: str | None,
    metadata: list[str] | None,
) -> WorkflowFilter:
    """The filter the parameters ask for; raises ``RequestValidationError`` naming the bad one."""
    try:
        return WorkflowFilter(
            statuses=frozenset(statuses or ()),
            created_after=_moment("created_after", created_after),
            created_before=_moment("created_before", created_before),
            metadata=tuple(_label(pair) for pair in metadata or ()),
        )
    except InvalidFilter as invalid:
        raise _invalid(invalid.parameter, invalid.message) from None


def _moment(parameter: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    # Python keeps microseconds: a finer fraction is cut, which keeps its order.
    trimmed = _FRACTION.sub(lambda m: "." + m[1][:6].ljust(6, "0"), text, count=1)
    try:
        return datetime.fromisoformat(trimmed.replace("z", "Z"))
    except ValueError:
        raise _invalid(parameter, f"{text!r} is not a valid RFC 3339 date-time") from None


def _label(pair: str) -> tuple[str, str]:
    key, colon, value = pair.partition(":")
    if not colon:
        raise InvalidFilter("metadata", "each value is key:value")
    return key, value


def _invalid(parameter: str, message: str) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", parameter), "msg": message}]
    )
