"""Who is calling: the API key of every ``/v1`` request, checked against the key store.

A request without a key, or with one the store does not hold (unknown or
revoked), gets 401 with ``WWW-Authenticate: Bearer``; a key without the scope
an operation needs gets 403. The key's record is read on every request, so a
new key works and a revoked one stops working on every replica at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tributary_gateway.deps import State
from tributary_shared.core.access import Caller, Scope, parse_key

__all__ = [
    "Admin",
    "Authenticated",
    "Canceller",
    "Deleter",
    "Reader",
    "Starter",
    "authenticated",
    "bearer_scheme",
    "requires",
]

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    bearerFormat="trb_<key id>_<secret>",
    description="An API key made with `tributary keys create` or `POST /v1/keys`, sent as "
    "`Authorization: Bearer <key>`.",
)


def _unauthorized(detail: str, *, invalid: bool) -> HTTPException:
    challenge = 'Bearer error="invalid_token"' if invalid else "Bearer"
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": challenge}
    )


async def authenticated(
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Caller:
    if credentials is None:
        raise _unauthorized(
            "an API key is required: send it as a Bearer token in the Authorization header",
            invalid=False,
        )
    presented = parse_key(credentials.credentials)
    record = await state.keys.get(presented.key_id) if presented is not None else None
    if presented is None or record is None or not record.accepts(presented):
        raise _unauthorized("the API key is not valid (unknown or revoked)", invalid=True)
    return record.caller()


Authenticated = Annotated[Caller, Depends(authenticated)]


def requires(scope: Scope) -> Callable[[Caller], Awaitable[Caller]]:
    """A dependency: the caller, if its key has ``scope``; 403 otherwise."""

    async def caller_with_scope(caller: Authenticated) -> Caller:
        if not caller.may(scope):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this API key lacks the {scope.value!r} scope",
                headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
            )
        return caller

    return caller_with_scope


Starter = Annotated[Caller, Depends(requires(Scope.START))]
Reader = Annotated[Caller, Depends(requires(Scope.READ))]
Canceller = Annotated[Caller, Depends(requires(Scope.CANCEL))]
Admin = Annotated[Caller, Depends(requires(Scope.ADMIN))]
Deleter = Annotated[Caller, Depends(requires(Scope.DELETE))]
