"""Stream tokens: signed, for one workflow's events, until they expire."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tributary_gateway.stream_tokens import (
    InvalidStreamToken,
    StreamGrant,
    sign_stream_token,
    verify_stream_token,
)
from tributary_shared.core.redaction import DEFAULT_REDACTOR

SECRET = b"s" * 32
WORKFLOW = "wf_" + "a" * 32
GRANT = StreamGrant(workflow_id=WORKFLOW, tenant_id="acme", key_id="0123456789ab", expires_at=1000)


def verify(
    token: str, *, secret: bytes = SECRET, workflow_id: str = WORKFLOW, now: float = 999
) -> StreamGrant:
    return verify_stream_token(token, secret=secret, workflow_id=workflow_id, now=now)


def test_a_token_carries_its_grant_back() -> None:
    assert verify(sign_stream_token(GRANT, secret=SECRET)) == GRANT


def test_a_token_is_refused_once_expired() -> None:
    token = sign_stream_token(GRANT, secret=SECRET)
    with pytest.raises(InvalidStreamToken, match="expired"):
        verify(token, now=1000)


def test_a_token_opens_only_its_own_workflow() -> None:
    token = sign_stream_token(GRANT, secret=SECRET)
    with pytest.raises(InvalidStreamToken, match="another workflow"):
        verify(token, workflow_id="wf_" + "b" * 32)


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = sign_stream_token(GRANT, secret=b"t" * 32)
    with pytest.raises(InvalidStreamToken, match="not valid"):
        verify(token)


def _claims(token: str) -> tuple[dict[str, object], str]:
    body = token.removeprefix("trb_st_")
    encoded, signature = body[:-44], body[-43:]
    return json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))), signature


def _forged(claims: dict[str, object], signature: str) -> str:
    encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"trb_st_{encoded}_{signature}"


@pytest.mark.parametrize(
    "change",
    [
        {"wf": "wf_" + "b" * 32},  # another workflow
        {"exp": 10**10},  # a later expiry
        {"kid": "ba9876543210"},  # another key
        {"tn": "other"},  # another tenant
        {"use": "calls"},  # another use
    ],
)
def test_a_tampered_token_is_refused(change: dict[str, object]) -> None:
    claims, signature = _claims(sign_stream_token(GRANT, secret=SECRET))
    with pytest.raises(InvalidStreamToken, match="not valid"):
        verify(_forged({**claims, **change}, signature), workflow_id=str(claims["wf"]))


@pytest.mark.parametrize(
    "token",
    [
        "",
        "trb_st_",
        "trb_st_x",
        "Bearer abc",
        "trb_st_" + "a" * 2000,
        "trb_0123456789ab_" + "a" * 40,  # an API key
        "trb_st_é_" + "ü" * 43,  # past ASCII
        "trb_st_" + "a" * 20 + "_" + "\x00" * 43,
    ],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidStreamToken):
        verify(token)


def test_the_refusal_never_repeats_the_token() -> None:
    token = sign_stream_token(GRANT, secret=SECRET)
    refusals: list[dict[str, Any]] = [
        {"now": 2000},
        {"workflow_id": "wf_" + "b" * 32},
        {"secret": b"t" * 32},
    ]
    for refusal in refusals:
        with pytest.raises(InvalidStreamToken) as refused:
            verify(token, **refusal)
        assert token not in str(refused.value)


def test_the_redactor_masks_a_token_wherever_it_is_written() -> None:
    token = sign_stream_token(GRANT, secret=SECRET)
    for text in (f"opened {token}", f'{{"stream_url": "/v1/x/events?token={token}"}}'):
        assert token not in DEFAULT_REDACTOR(text)
        # Not even a recognisable piece of it: the whole token goes.
        assert token[12:40] not in DEFAULT_REDACTOR(text)
