"""Who may follow a workflow's events: an API key in the header, or a stream token.

``GET /v1/workflows/{id}/events`` is the one route that takes ``?token=``
(``stream_tokens``) instead of ``Authorization: Bearer``, because a browser's
``EventSource`` cannot send a header. The token stands for the key it was issued
to: the key must still exist (a revoked key's tokens stop working) and still have
the ``read`` scope. Every other route reads only the header, so a token opens
nothing else; and a token is accepted only for the workflow it names.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, status
from fastapi.security import HTTPAuthorizationCredentials

from tributary_gateway.auth import authenticated, bearer_scheme, requires
from tributary_gateway.deps import State
from tributary_gateway.quotas import pace, principal
from tributary_gateway.stream_tokens import InvalidStreamToken, verify_stream_token
from tributary_shared.core.access import Caller, Scope

__all__ = ["StreamReader", "stream_rate_limited", "stream_reader"]

_read_scope = requires(Scope.READ)


def _refused(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


async def stream_reader(
    state: State,
    workflow_id: Annotated[str, Path()],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    token: Annotated[
        str | None,
        Query(
            description="A stream token (`POST /v1/workflows/{id}/stream-token`) for this "
            "workflow, instead of the `Authorization` header: for a browser's `EventSource`, "
            "which cannot send one. Never logged.",
        ),
    ] = None,
) -> Caller:
    """The caller following ``workflow_id``'s events: by its token if it sent one."""
    if token is None:
        return await _read_scope(await authenticated(state, credentials))
    try:
        grant = verify_stream_token(
            token,
            secret=await state.stream_secret.secret(),
            workflow_id=workflow_id,
            now=time.time(),
        )
    except InvalidStreamToken as refused:
        raise _refused(str(refused)) from None
    record = await state.keys.get(grant.key_id)
    if record is None:
        raise _refused("the API key this stream token was issued to was revoked")
    caller = record.caller()
    if not (caller.may(Scope.READ) and caller.sees(grant.tenant_id)):
        raise _refused("the API key this stream token was issued to may not read this workflow")
    return caller


StreamReader = Annotated[Caller, Depends(stream_reader)]


async def stream_rate_limited(state: State, caller: StreamReader) -> None:
    """The rate limit of the caller's key, whether it came as a key or as a token."""
    await pace(state, principal(caller))
