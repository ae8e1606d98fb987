"""Workflow callbacks (webhooks): the pure rules, apart from the HTTP and Redis that carry them.

When a workflow with a ``callback_url`` ends (completed, failed or cancelled), its
tenant's receiver gets one JSON ``POST``, signed so that it can tell the body came
from Tributary and was not replayed long after:

    Tributary-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>
    Tributary-Delivery-Id: <id, the same on every retry of one workflow's callback>

What is decided here: whether a URL may be a callback target at all
(``check_callback_url``), the body (``callback_body``), the signature
(``signature_header``, ``verify_signature``), what an answer means
(``verdict_of``), and when the next try goes (``retry_delay_s``). The deliverer
(``tributary_shared.runtime.callbacks``) does the I/O; the addresses a URL may
reach are decided by ``core.netguard``, as for ``fetch_url``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from enum import Enum
from typing import Literal

from pydantic import AwareDatetime, Field

from tributary_shared.core.callback_urls import CALLBACK_URL_MAX_CHARS, check_callback_url
from tributary_shared.core.events import Model, derived_event_id
from tributary_shared.core.records import WorkflowRecord

__all__ = [
    "CALLBACK_URL_MAX_CHARS",
    "DELIVERY_ID_HEADER",
    "SIGNATURE_HEADER",
    "CallbackAttempt",
    "CallbackRecord",
    "CallbackState",
    "Verdict",
    "callback_body",
    "check_callback_url",
    "delivery_id_of",
    "retry_delay_s",
    "signature_header",
    "verdict_of",
    "verify_signature",
]

SIGNATURE_HEADER = "Tributary-Signature"
DELIVERY_ID_HEADER = "Tributary-Delivery-Id"

CallbackState = Literal["pending", "delivered", "failed"]


class CallbackAttempt(Model):
    """One try at delivering a workflow's callback."""

    at: AwareDatetime = Field(description="When the request was sent.")
    status: int | None = Field(
        default=None, description="The receiver's HTTP status; null when no answer came."
    )
    error: str | None = Field(
        default=None,
        description="Why the try failed without an answer (refused target, timeout, "
        "connection error), or why it was not made.",
    )
    duration_ms: int = Field(ge=0, description="From sending the request to its answer or error.")


class CallbackRecord(Model):
    """A workflow's callback: where it goes, how far it got, every try."""

    url: str
    delivery_id: str = Field(description="Sent as Tributary-Delivery-Id on every try.")
    state: CallbackState = "pending"
    attempts: tuple[CallbackAttempt, ...] = ()


def delivery_id_of(workflow_id: str) -> str:
    """The id a receiver dedupes on: one per workflow's callback, the same on every try."""
    return "cb_" + derived_event_id("callback", workflow_id)


def callback_body(record: WorkflowRecord, *, delivery_id: str) -> bytes:
    """The JSON a receiver gets: the workflow's outcome, no secret and no internals."""
    body: dict[str, object] = {
        "delivery_id": delivery_id,
        "workflow_id": record.workflow_id,
        "tenant_id": record.tenant_id,
        "status": record.status.value,
        "created_at": record.created_at.isoformat(),
        "ended_at": record.updated_at.isoformat(),
        "result": record.result,
        "partial": record.partial,
        "error": record.error.model_dump(mode="json") if record.error is not None else None,
        "usage": {
            "prompt_tokens": record.usage.prompt_tokens,
            "completion_tokens": record.usage.completion_tokens,
        },
        "metadata": dict(record.options.metadata),
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _digest(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secret: bytes, timestamp: int, body: bytes) -> str:
    """``t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">``.

    The timestamp is inside the MAC so that a captured request cannot be replayed
    later under a fresh time: the receiver refuses an old ``t``.
    """
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify_signature(
    secret: bytes, header: str, body: bytes, *, now: float, tolerance_s: float = 300
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret``, made within ``tolerance_s`` of
    ``now``. The recipe docs/api.md gives receivers, as Tributary's own tests run it."""
    fields: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = _digest(secret, timestamp, body)
    return any(hmac.compare_digest(expected, given) for given in fields.get("v1", []))


class Verdict(Enum):
    """What one try's outcome means for the callback."""

    DELIVERED = "delivered"
    RETRY = "retry"
    GIVE_UP = "give_up"


# Answers that say "not now" rather than "never": a timeout on their side, too many requests.
_RETRYABLE_CLIENT_ERRORS = frozenset({408, 429})


def verdict_of(status: int | None) -> Verdict:
    """2xx delivered; 408, 429, 5xx and no answer at all (``None``: a timeout, a refused
    connection) are tried again; any other answer (3xx: redirects are not followed;
    4xx: the receiver refuses it) gives up."""
    if status is None or status >= 500 or status in _RETRYABLE_CLIENT_ERRORS:
        return Verdict.RETRY
    if 200 <= status < 300:
        return Verdict.DELIVERED
    return Verdict.GIVE_UP


def retry_delay_s(tries_made: int, *, base_s: float, max_s: float) -> float:
    """Seconds before the next try after ``tries_made`` (>= 1) failed ones:
    ``base_s``, then doubling, at most ``max_s``."""
    if tries_made < 1:
        raise ValueError("retry_delay_s is for after a failed try")
    return float(min(max_s, base_s * 2 ** min(tries_made - 1, 62)))
