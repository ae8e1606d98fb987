"""API keys, for admin keys: issue one, list them, revoke one (as ``tributary keys`` does)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Response, status

from tributary_gateway import error_examples as errors
from tributary_gateway import examples
from tributary_gateway.auth import Admin, authenticated
from tributary_gateway.deps import State
from tributary_gateway.examples import openapi_examples
from tributary_gateway.responses import BODY_ERRORS, COMMON_ERRORS, answer, success
from tributary_gateway.schemas import CreateKey, Invalid, KeyCreated, KeyList, KeyView
from tributary_shared.core.access import TENANT_PATTERN, Scope, issue_key
from tributary_shared.core.events import utc_now

log = logging.getLogger(__name__)
router = APIRouter(
    prefix="/v1/keys",
    tags=["keys"],
    dependencies=[Depends(authenticated)],
    responses={
        **COMMON_ERRORS,
        403: answer("The API key is not an admin key.", errors.lacks_scope(Scope.ADMIN)),
    },
)

KeyId = Annotated[
    str, Path(pattern=r"^[0-9a-f]{12}$", description="The key's id, as listed (not the key).")
]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=KeyCreated,
    responses={
        201: success(examples.KEY_CREATED),
        **BODY_ERRORS,
        422: answer(
            "The body is malformed (a field is in `loc`): a tenant id that cannot be one, a "
            "scope that does not exist.",
            errors.BAD_KEY_BODY,
            model=Invalid,
        ),
    },
    summary="Issue an API key; the answer holds the key itself, shown this once",
)
async def create_key(
    body: Annotated[
        CreateKey,
        Body(openapi_examples=openapi_examples(examples.CREATE_KEY, examples.CREATE_ADMIN_KEY)),
    ],
    state: State,
    caller: Admin,
) -> KeyCreated:
    issued = issue_key(
        tenant_id=body.tenant_id, scopes=body.scopes, created_at=utc_now(), label=body.label
    )
    await state.keys.add(issued.record)
    log.info(
        "API key %s issued for tenant %s by key %s",
        issued.record.key_id,
        issued.record.tenant_id,
        caller.key_id,
    )
    return KeyCreated(**KeyView.of(issued.record).model_dump(), key=issued.key)


@router.get(
    "",
    response_model=KeyList,
    responses={
        200: success(examples.KEY_LIST),
        422: answer("`tenant` cannot be a tenant id.", errors.BAD_TENANT_QUERY, model=Invalid),
    },
    summary="API keys, oldest first (never the keys)",
)
async def list_keys(
    state: State,
    _caller: Admin,
    tenant: Annotated[
        str | None, Query(pattern=TENANT_PATTERN, description="Only this tenant's keys.")
    ] = None,
) -> KeyList:
    records = await state.keys.list_keys(tenant_id=tenant)
    return KeyList(keys=[KeyView.of(record) for record in records])


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        404: answer("No key with this id.", errors.KEY_NOT_FOUND),
        422: answer("`key_id` is not a key id (12 hex digits).", errors.BAD_KEY_ID, model=Invalid),
    },
    summary="Revoke an API key: every gateway replica refuses it from the next request on",
)
async def revoke_key(key_id: KeyId, state: State, caller: Admin) -> Response:
    if not await state.keys.revoke(key_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no API key {key_id!r}")
    log.info("API key %s revoked by key %s", key_id, caller.key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
