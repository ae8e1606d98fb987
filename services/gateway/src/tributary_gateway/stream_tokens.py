"""Stream tokens: short-lived, signed permission to follow one workflow's events. Pure.

A browser's ``EventSource`` cannot send an ``Authorization`` header, so a client
with an API key asks for a token (``POST /v1/workflows/{id}/stream-token``) and
passes it as ``?token=`` to ``GET /v1/workflows/{id}/events``. The token says
which workflow, tenant and API key it was issued for, what it is for and until
when; an HMAC-SHA256 over all of it makes it unforgeable without the server's
secret. It is only ever accepted by the events route of its own workflow.

The text is ``trb_st_<payload>_<signature>`` (both base64url): the ``trb_``
prefix is one the redactor masks wherever the token lands (a log line, an
error), and nothing in it is a valid API key, so no other route accepts it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

__all__ = [
    "STREAM_TOKEN_PREFIX",
    "InvalidStreamToken",
    "StreamGrant",
    "sign_stream_token",
    "verify_stream_token",
]

STREAM_TOKEN_PREFIX = "trb_st_"  # noqa: S105 (a prefix, not a secret)
_VERSION = 1
# What the token may be used for: a future token signed with the same secret names
# another use, so neither is accepted in place of the other.
_USE = "events"
# The signing key is derived for this use alone, so the configured secret never
# signs anything directly.
_DERIVATION = b"tributary stream token v1"
_SIGNATURE_CHARS = 43  # 32 bytes of HMAC-SHA256 in unpadded base64url
_MAX_TOKEN_CHARS = 1024


@dataclass(frozen=True, slots=True)
class StreamGrant:
    """What a stream token allows: following ``workflow_id``'s events until ``expires_at``.

    ``key_id`` is the API key it was issued to: once that key is revoked the token
    stops working. ``expires_at`` is in epoch seconds.
    """

    workflow_id: str
    tenant_id: str
    key_id: str
    expires_at: int


class InvalidStreamToken(Exception):
    """The token is not accepted; the message says why without repeating the token."""


def sign_stream_token(grant: StreamGrant, *, secret: bytes) -> str:
    """The token for ``grant``, signed with ``secret``."""
    payload = json.dumps(
        {
            "v": _VERSION,
            "use": _USE,
            "wf": grant.workflow_id,
            "tn": grant.tenant_id,
            "kid": grant.key_id,
            "exp": grant.expires_at,
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    encoded = _b64(payload)
    return f"{STREAM_TOKEN_PREFIX}{encoded}_{_signature(encoded, secret)}"


def verify_stream_token(token: str, *, secret: bytes, workflow_id: str, now: float) -> StreamGrant:
    """The grant ``token`` carries, if it is signed with ``secret``, unexpired at ``now``
    and for ``workflow_id``'s events; raises ``InvalidStreamToken`` otherwise."""
    if len(token) > _MAX_TOKEN_CHARS or not token.startswith(STREAM_TOKEN_PREFIX):
        raise InvalidStreamToken("the stream token is malformed")
    body = token[len(STREAM_TOKEN_PREFIX) :]
    encoded, separator, signature = (
        body[: -_SIGNATURE_CHARS - 1],
        body[-_SIGNATURE_CHARS - 1 : -_SIGNATURE_CHARS],
        body[-_SIGNATURE_CHARS:],
    )
    if separator != "_" or not encoded:
        raise InvalidStreamToken("the stream token is malformed")
    # Checked before anything in it is believed.
    # As bytes: compare_digest refuses a str with characters past ASCII.
    if not hmac.compare_digest(signature.encode(), _signature(encoded, secret).encode()):
        raise InvalidStreamToken("the stream token is not valid")
    grant = _grant(encoded)
    if grant.workflow_id != workflow_id:
        raise InvalidStreamToken("the stream token is for another workflow")
    if now >= grant.expires_at:
        raise InvalidStreamToken("the stream token has expired; ask for a new one")
    return grant


def _grant(encoded: str) -> StreamGrant:
    try:
        claims = json.loads(_unb64(encoded))
        if claims["v"] != _VERSION or claims["use"] != _USE:
            raise InvalidStreamToken("the stream token is not for an event stream")
        return StreamGrant(
            workflow_id=str(claims["wf"]),
            tenant_id=str(claims["tn"]),
            key_id=str(claims["kid"]),
            expires_at=int(claims["exp"]),
        )
    except (ValueError, KeyError, TypeError, binascii.Error):
        # Only a holder of the secret could have signed it: a bug, not an attack.
        raise InvalidStreamToken("the stream token is malformed") from None


def _signature(encoded: str, secret: bytes) -> str:
    key = hmac.new(secret, _DERIVATION, hashlib.sha256).digest()
    return _b64(hmac.new(key, encoded.encode(), hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
