"""Workflows: start one, list them, read one's state, follow its events live (SSE), answer
its input requests, cancel or delete it.

Every route needs an API key (``tributary_gateway.auth``); the event stream takes a
stream token instead (``stream_router``, ``tributary_gateway.stream_access``). A workflow belongs to
the tenant of the key that started it; a key of another tenant gets the same
404 as for an id that does not exist, so it learns nothing of the workflow.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Path, Query, Response, status
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from tributary_gateway import error_examples as errors
from tributary_gateway import examples
from tributary_gateway.auth import Canceller, Deleter, Reader, Starter, authenticated
from tributary_gateway.callbacks import CallbackView, with_callback
from tributary_gateway.calls import read_calls
from tributary_gateway.deps import State
from tributary_gateway.examples import openapi_examples
from tributary_gateway.filters import RFC3339_PATTERN, listing_filter
from tributary_gateway.quotas import (
    admit_running,
    bounded_options,
    rate_limited,
    release_running,
)
from tributary_gateway.responses import BODY_ERRORS, COMMON_ERRORS, RATE_LIMITED, answer, success
from tributary_gateway.schemas import (
    AnswerInput,
    CallList,
    CancelWorkflow,
    CreateWorkflow,
    InputAnsweredView,
    InputProblem,
    Invalid,
    InvalidAnswer,
    StreamTokenIssued,
    WorkflowAccepted,
    WorkflowCancelledView,
    WorkflowLinks,
    WorkflowList,
    WorkflowSummary,
    WorkflowView,
)
from tributary_gateway.stream_access import StreamReader, stream_rate_limited
from tributary_gateway.stream_modes import EventFilter, StreamMode, merged
from tributary_gateway.stream_tokens import StreamGrant, sign_stream_token
from tributary_shared.core import machine
from tributary_shared.core.access import TENANT_PATTERN, Caller, Scope
from tributary_shared.core.deltas import LLMDelta
from tributary_shared.core.events import (
    TERMINAL_EVENT_TYPES,
    ErrorInfo,
    WorkflowFailed,
    WorkflowRequested,
    derived_event_id,
)
from tributary_shared.core.listing import LISTING_SCAN_ENTRIES, METADATA_FILTERS_MAX
from tributary_shared.core.machine import TransitionConflict
from tributary_shared.core.ports import (
    FollowerOverrun,
    IdempotencyKeyReused,
    WorkflowStillActive,
    WorkflowStore,
)
from tributary_shared.core.records import LogEntry, WorkflowRecord
from tributary_shared.core.status import WorkflowStatus
from tributary_shared.runtime.control import deadline_at
from tributary_shared.runtime.inputs import InputRefused, Refusal, WorkflowInputs
from tributary_shared.runtime.logs import workflow_context

log = logging.getLogger(__name__)
router = APIRouter(
    prefix="/v1/workflows",
    tags=["workflows"],
    # Every route of the router, whatever its own parameters: no key, no answer;
    # then each key's requests are paced (the limiter keys on the key's id).
    dependencies=[Depends(authenticated), Depends(rate_limited)],
    responses={
        **COMMON_ERRORS,
        **RATE_LIMITED,
        403: answer("The API key lacks the scope this needs.", errors.lacks_scope(Scope.READ)),
    },
)
# The event stream only: a browser's EventSource cannot send a key, so it may come
# with a stream token instead (``stream_access``); paced like the key it stands for.
stream_router = APIRouter(
    prefix="/v1/workflows",
    tags=["workflows"],
    dependencies=[Depends(stream_rate_limited)],
    responses={
        **COMMON_ERRORS,
        **RATE_LIMITED,
        401: answer(
            "No API key and no stream token; a key malformed, unknown or revoked; or a stream "
            "token malformed, expired, for another workflow, or of a revoked key.",
            errors.NO_KEY,
            errors.INVALID_KEY,
            errors.STREAM_TOKEN_EXPIRED,
            errors.STREAM_TOKEN_OTHER_WORKFLOW,
            errors.STREAM_TOKEN_KEY_REVOKED,
            headers=COMMON_ERRORS[401]["headers"],
        ),
        403: answer("The API key lacks the `read` scope.", errors.lacks_scope(Scope.READ)),
    },
)

WorkflowId = Annotated[str, Path(description="The id returned when the workflow was started.")]
_WORKFLOW_ID = re.compile(r"^wf_[0-9a-f]{32}$")
_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
_CURSOR = r"^\d{17}-wf_[0-9a-f]{32}$"
# Kafka away is usually a broker restart or a leader election: seconds.
_QUEUE_RETRY_AFTER_S = 2
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: answer(
        "No workflow with this id that this API key's tenant owns.", errors.WORKFLOW_NOT_FOUND
    )
}


def _links(workflow_id: str) -> WorkflowLinks:
    return WorkflowLinks(
        self=f"/v1/workflows/{workflow_id}",
        events=f"/v1/workflows/{workflow_id}/events",
        calls=f"/v1/workflows/{workflow_id}/calls",
    )


def _not_found(workflow_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"workflow {workflow_id!r} not found")


async def _owned(state: State, caller: Caller, workflow_id: str) -> WorkflowRecord:
    """The workflow, if the caller's tenant owns it (or the caller is an admin); else 404.

    Another tenant's workflow is answered exactly as one that does not exist.
    """
    if not _WORKFLOW_ID.match(workflow_id):
        raise _not_found(workflow_id)
    record = await state.store.get_workflow(workflow_id)
    if record is None or not caller.sees(record.tenant_id):
        raise _not_found(workflow_id)
    return record


def _tenant_for(caller: Caller, asked: str | None, *, doing: str) -> str:
    """The tenant a request acts for: the key's, or the one an admin key names."""
    if asked is None or asked == caller.tenant_id:
        return caller.tenant_id
    if not caller.admin:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"only an admin API key may {doing} another tenant"
        )
    return asked


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WorkflowAccepted,
    responses={
        202: success(examples.ACCEPTED, examples.ACCEPTED_REPLAYED),
        403: answer(
            "The API key lacks the `start` scope, or names another tenant without being an "
            "admin key.",
            errors.lacks_scope(Scope.START),
            errors.other_tenant("start workflows for"),
        ),
        **BODY_ERRORS,
        409: answer(
            "The `Idempotency-Key` names a workflow that was deleted; send the request again "
            "with a new key.",
            errors.IDEMPOTENCY_KEY_OF_DELETED,
        ),
        422: answer(
            "The request is malformed, or asks for more than a bound or than its tenant's "
            "ceiling, or reuses an `Idempotency-Key` for another request; the detail says "
            "which.",
            errors.TASK_MISSING,
            errors.OPTION_OUT_OF_BOUNDS,
            errors.TASK_BLANK,
            errors.TASK_TOO_LONG,
            errors.ABOVE_CEILING,
            errors.IDEMPOTENCY_KEY_REUSED,
            model=Invalid,
        ),
        429: {
            **RATE_LIMITED[429],
            **answer(
                "Too many requests from this API key, or its tenant runs as many workflows as "
                "it may; retry after `Retry-After`.",
                errors.RATE_LIMITED,
                errors.TENANT_AT_CEILING,
            ),
        },
        503: {
            **COMMON_ERRORS[503],
            **answer(
                "Redis, or Kafka, could not take the request. Without an `Idempotency-Key` "
                "nothing was started: retry. With one, the workflow waits to be sent: retry "
                "with the same key, which sends it.",
                errors.STORE_UNAVAILABLE,
                errors.NOT_QUEUED,
                errors.NOT_QUEUED_KEYED,
            ),
        },
    },
    summary="Start a workflow",
)
async def create_workflow(
    body: Annotated[
        CreateWorkflow,
        Body(
            openapi_examples=openapi_examples(
                examples.CREATE_MINIMAL, examples.CREATE_WITH_OPTIONS, examples.CREATE_FOR_TENANT
            )
        ),
    ],
    state: State,
    caller: Starter,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=200,
            description="Retries with the same key return the first workflow, not a new one "
            "(and send it again while it has not started).",
        ),
    ] = None,
) -> WorkflowAccepted | JSONResponse:
    task = body.task.strip()
    if not task:
        raise HTTPException(422, "task must not be blank")
    if len(task) > state.settings.max_task_chars:
        raise HTTPException(422, f"task is longer than {state.settings.max_task_chars} characters")
    tenant_id = _tenant_for(caller, body.tenant_id, doing="start workflows for")
    workflow_id = f"wf_{uuid.uuid4().hex}"
    request = WorkflowRequested(
        workflow_id=workflow_id,
        tenant_id=tenant_id,
        task=task,
        options=with_callback(
            bounded_options(state, tenant_id, body.options), tenant_id, state.callback_settings
        ),
    )
    # Counted before it exists, so two replicas cannot both take a tenant's last slot.
    # Were this request to die before creating it, the count drops it after a grace.
    await admit_running(state, tenant_id, workflow_id)
    try:
        existing = await state.store.create_workflow(
            request,
            deadline_at=deadline_at(request, state.defaults),
            idempotency_key_value=idempotency_key,
        )
    except IdempotencyKeyReused:
        await release_running(state, tenant_id, workflow_id)
        # Naming the first request's workflow would hand its id to whoever guessed the key.
        raise HTTPException(
            422, "Idempotency-Key was already used for a different request"
        ) from None
    if existing is not None:
        await release_running(state, tenant_id, workflow_id)
        return await _replay(state, existing, response)
    with workflow_context(workflow_id):
        if not await _sent(state, request):
            if idempotency_key is None:
                # Without a key the client's retry starts another workflow: end
                # this one, so that it is never sent later as well.
                await _fail_unpublished(state.store, request)
            return _unavailable(keyed=idempotency_key is not None)
        log.info("workflow accepted")
    response.headers["Location"] = f"/v1/workflows/{workflow_id}"
    return WorkflowAccepted(
        workflow_id=workflow_id, status=WorkflowStatus.PENDING, links=_links(workflow_id)
    )


async def _replay(
    state: State, workflow_id: str, response: Response
) -> WorkflowAccepted | JSONResponse:
    """Answer a retried request with the workflow its key names; send it again if pending.

    A workflow still ``pending`` may never have reached Kafka (the first attempt
    died, or Kafka refused it), so its logged request goes out again with its
    first event id: a planner that already has it sees the same event twice.
    """
    record = await state.store.get_workflow(workflow_id)
    if record is None:  # it existed when the key was used again: it was deleted since
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "the workflow this Idempotency-Key started was deleted; use a new key",
        )
    current = record.status
    if current is WorkflowStatus.PENDING:
        with workflow_context(workflow_id):
            request = await _logged_request(state.store, workflow_id)
            if request is None or not await _sent(state, request):
                return _unavailable(keyed=True)
            log.info("workflow request sent again for a retried request")
    response.headers["Location"] = f"/v1/workflows/{workflow_id}"
    response.headers["Idempotent-Replayed"] = "true"
    return WorkflowAccepted.model_validate(
        {"workflow_id": workflow_id, "status": current, "links": _links(workflow_id)}
    )


async def _logged_request(store: WorkflowStore, workflow_id: str) -> WorkflowRequested | None:
    """The request a workflow was created from: the first entry of its log."""
    entries = await store.read_log(workflow_id, count=1)
    if not entries or entries[0].type != "workflow.requested":
        return None
    return WorkflowRequested.model_validate_json(entries[0].event_json)


async def _sent(state: State, request: WorkflowRequested) -> bool:
    try:
        await state.publisher.publish([request])  # clears its outbox note once sent
    except Exception:
        log.exception("publishing the workflow request failed")
        return False
    return True


def _unavailable(*, keyed: bool) -> JSONResponse:
    detail = (
        "the workflow could not be queued yet; retry with the same Idempotency-Key"
        if keyed
        else "the workflow could not be queued; please retry"
    )
    return JSONResponse(
        {"detail": detail},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(_QUEUE_RETRY_AFTER_S)},
    )


async def _fail_unpublished(store: WorkflowStore, request: WorkflowRequested) -> None:
    failed = WorkflowFailed(
        event_id=derived_event_id(request.workflow_id, "final"),
        workflow_id=request.workflow_id,
        tenant_id=request.tenant_id,
        causation_id=request.event_id,
        error=ErrorInfo(
            code="broker_unavailable",
            message="the workflow could not be queued",
            error_class="transient",
            retryable=True,
        ),
    )
    try:
        await store.apply(machine.fail(failed))
    except TransitionConflict:
        pass
    except Exception:
        log.exception("recording the failed request failed")


@router.get(
    "",
    response_model=WorkflowList,
    responses={
        200: success(examples.WORKFLOW_LIST),
        403: answer(
            "The API key lacks the `read` scope, or names another tenant without being an "
            "admin key.",
            errors.lacks_scope(Scope.READ),
            errors.other_tenant("list the workflows of"),
        ),
        422: answer(
            "A parameter is malformed or out of its bounds (its name is in `loc`), or "
            "`created_after` is not earlier than `created_before`.",
            errors.LIST_LIMIT_OUT_OF_BOUNDS,
            errors.BAD_TIME_BOUND,
            errors.TIME_BOUNDS_REVERSED,
            model=Invalid,
        ),
    },
    summary="The workflows of the API key's tenant, newest first, a page at a time",
    description="Filters combine (all must hold); pass the same ones with `cursor` for the "
    f"next page. A page reads at most {LISTING_SCAN_ENTRIES} workflows of the index and "
    "stops there, so it may hold fewer than `limit` (even none) while `next_cursor` says "
    "more follow.",
)
async def list_workflows(
    state: State,
    caller: Reader,
    limit: Annotated[int, Query(ge=1, le=100, description="Most workflows in the page.")] = 20,
    cursor: Annotated[
        str | None,
        Query(pattern=_CURSOR, description="`next_cursor` of the previous page."),
    ] = None,
    tenant: Annotated[
        str | None,
        Query(
            pattern=TENANT_PATTERN,
            description="Another tenant's workflows (admin keys only). An admin key that "
            "names no tenant lists every tenant's.",
        ),
    ] = None,
    workflow_status: Annotated[
        list[WorkflowStatus] | None,
        Query(
            alias="status",
            max_length=len(WorkflowStatus),
            description="Only workflows in one of these statuses (repeat the parameter).",
        ),
    ] = None,
    created_after: Annotated[
        str | None,
        Query(
            pattern=RFC3339_PATTERN,
            description="Only workflows created after this RFC 3339 date-time "
            "(`2026-11-30T10:00:00Z`).",
        ),
    ] = None,
    created_before: Annotated[
        str | None,
        Query(
            pattern=RFC3339_PATTERN,
            description="Only workflows created before this RFC 3339 date-time.",
        ),
    ] = None,
    metadata: Annotated[
        list[str] | None,
        Query(
            max_length=METADATA_FILTERS_MAX,
            description="`key:value`: only workflows whose metadata holds `key` with exactly "
            "this value (split at the first `:`). Repeat it (at most "
            f"{METADATA_FILTERS_MAX} times) to require several pairs.",
        ),
    ] = None,
) -> WorkflowList:
    filters = listing_filter(
        statuses=workflow_status,
        created_after=created_after,
        created_before=created_before,
        metadata=metadata,
    )
    if caller.admin:
        listed: str | None = tenant
    else:
        listed = _tenant_for(caller, tenant, doing="list the workflows of")
    page = await state.listing.list_workflows(
        tenant_id=listed, limit=limit, cursor=cursor, filters=filters
    )
    return WorkflowList(
        workflows=[
            WorkflowSummary.of(record, _links(record.workflow_id))
            for record in page.records
            if caller.sees(record.tenant_id)
        ],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/{workflow_id}",
    response_model=WorkflowView,
    responses={
        200: success(
            examples.WORKFLOW_COMPLETED, examples.WORKFLOW_RUNNING, examples.WORKFLOW_AWAITING_INPUT
        ),
        **_NOT_FOUND,
    },
    summary="A workflow's status, plan, steps, result and token usage",
)
async def get_workflow(workflow_id: WorkflowId, state: State, caller: Reader) -> WorkflowView:
    record = await _owned(state, caller, workflow_id)
    budget = await state.ledger.state(workflow_id)
    callback = None
    if record.options.callback_url is not None and state.callbacks is not None:
        progress = await state.callbacks.progress(workflow_id)
        callback = CallbackView.of(record.options.callback_url, progress)
    return WorkflowView.of(record, budget, _links(workflow_id), callback=callback)


@router.post(
    "/{workflow_id}/cancel",
    response_model=WorkflowCancelledView,
    responses={
        200: success(examples.CANCELLED, examples.CANCELLED_DEFAULT_REASON),
        403: answer("The API key lacks the `cancel` scope.", errors.lacks_scope(Scope.CANCEL)),
        **BODY_ERRORS,
        **_NOT_FOUND,
        409: answer("The workflow has already ended.", errors.ALREADY_ENDED),
        422: answer(
            "The body is malformed; the detail says which field.",
            errors.REASON_NOT_TEXT,
            model=Invalid,
        ),
    },
    summary="Cancel a workflow: running steps stop, pending ones never start",
)
async def cancel_workflow(
    workflow_id: WorkflowId,
    state: State,
    caller: Canceller,
    body: Annotated[
        CancelWorkflow | None, Body(openapi_examples=openapi_examples(examples.CANCEL_BODY))
    ] = None,
) -> WorkflowCancelledView:
    record = await _owned(state, caller, workflow_id)
    reason = body.reason if body and body.reason else "cancelled by request"
    with workflow_context(workflow_id):
        cancelled = await state.control.cancel(
            workflow_id, tenant_id=record.tenant_id, reason=reason
        )
    if not cancelled:
        current = await state.store.get_workflow(workflow_id)
        ended = current.status if current else record.status
        raise HTTPException(status.HTTP_409_CONFLICT, f"workflow has already ended: {ended}")
    return WorkflowCancelledView(
        workflow_id=workflow_id, status=WorkflowStatus.CANCELLED, reason=reason
    )


_INPUT_STATUS = {
    Refusal.WORKFLOW_NOT_FOUND: status.HTTP_404_NOT_FOUND,
    Refusal.REQUEST_NOT_FOUND: status.HTTP_404_NOT_FOUND,
    Refusal.ALREADY_ANSWERED: status.HTTP_409_CONFLICT,
    Refusal.EXPIRED: status.HTTP_409_CONFLICT,
    Refusal.WORKFLOW_ENDED: status.HTTP_409_CONFLICT,
    Refusal.NOT_A_CHOICE: status.HTTP_422_UNPROCESSABLE_CONTENT,
}


def _input_problem(refusal: Refusal, detail: str) -> JSONResponse:
    return JSONResponse(
        {"detail": detail, "code": refusal.value}, status_code=_INPUT_STATUS[refusal]
    )


@router.post(
    "/{workflow_id}/input",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=InputAnsweredView,
    responses={
        202: success(examples.INPUT_ANSWERED),
        403: answer("The API key lacks the `start` scope.", errors.lacks_scope(Scope.START)),
        **BODY_ERRORS,
        404: answer(
            "No workflow with this id that this API key's tenant owns, or no input request "
            "with this id in it.",
            errors.INPUT_WORKFLOW_NOT_FOUND,
            errors.INPUT_REQUEST_NOT_FOUND,
            model=InputProblem,
        ),
        409: answer(
            "The request was answered already, or has expired, or the workflow has ended.",
            errors.INPUT_ALREADY_ANSWERED,
            errors.INPUT_REQUEST_EXPIRED,
            errors.INPUT_WORKFLOW_ENDED,
            model=InputProblem,
        ),
        422: answer(
            "The answer is not one of the request's choices (or the body is malformed: then "
            "the detail lists the fields, as for any request).",
            errors.INPUT_NOT_A_CHOICE,
            errors.INPUT_BODY_INVALID,
            model=InvalidAnswer,
        ),
    },
    summary="Answer an input request: its paused step resumes where it stopped",
)
async def answer_input(
    workflow_id: WorkflowId,
    body: Annotated[AnswerInput, Body(openapi_examples=openapi_examples(examples.ANSWER_BODY))],
    state: State,
    caller: Starter,
) -> InputAnsweredView | JSONResponse:
    try:
        await _owned(state, caller, workflow_id)
    except HTTPException as missing:
        return _input_problem(Refusal.WORKFLOW_NOT_FOUND, str(missing.detail))
    inputs = WorkflowInputs(store=state.store, publisher=state.publisher)
    with workflow_context(workflow_id):
        try:
            answered = await inputs.answer(
                workflow_id, request_id=body.request_id, answer=body.answer, source="http"
            )
        except InputRefused as refused:
            return _input_problem(refused.refusal, refused.message)
        except TransitionConflict:
            raise HTTPException(
                status.HTTP_409_CONFLICT, "the workflow moved on meanwhile; read it again"
            ) from None
    return InputAnsweredView.answered(answered)


@router.delete(
    "/{workflow_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        204: {"description": "Deleted: its state and log are gone."},
        403: answer("The API key lacks the `delete` scope.", errors.lacks_scope(Scope.DELETE)),
        **_NOT_FOUND,
        409: answer(
            "The workflow has not ended: cancel it, or wait for it to end.", errors.STILL_ACTIVE
        ),
    },
    summary="Delete an ended workflow: its state, log and recorded calls",
    description="Removes everything stored of the workflow (record, steps, log, budget, "
    "call history, effect ledger, its entries in listings); it answers 404 from then on. "
    "Events already published to Kafka stay there until the topics' retention drops them.",
)
async def delete_workflow(workflow_id: WorkflowId, state: State, caller: Deleter) -> Response:
    await _owned(state, caller, workflow_id)
    with workflow_context(workflow_id):
        try:
            purged = await state.store.purge(workflow_id)
        except WorkflowStillActive as active:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"workflow is {active.status}: cancel it, or wait for it to end",
            ) from None
        if not purged:  # deleted by another request since it was read
            raise _not_found(workflow_id)
        log.info("workflow deleted")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{workflow_id}/calls",
    response_model=CallList,
    responses={
        200: success(examples.CALL_LIST),
        **_NOT_FOUND,
        422: answer(
            "A parameter is malformed or out of its bounds (its name is in `loc`).",
            errors.CALLS_LIMIT_OUT_OF_BOUNDS,
            model=Invalid,
        ),
    },
    summary="A workflow's recorded LLM and tool calls, a page at a time",
    description="Every LLM call (messages sent, tools offered, models tried, the answer, "
    "usage, each HTTP try with its error) and every tool call (arguments, result) of the "
    "workflow, with secrets redacted, in the order they were recorded. Empty when "
    "`TRIBUTARY_RECORD_CALLS` is off.",
)
async def list_calls(
    workflow_id: WorkflowId,
    state: State,
    caller: Reader,
    after: Annotated[
        str,
        Query(
            pattern=r"^(0|\d{1,20}-\d{1,20})$",
            description="`next_after` of the previous page (default: from the start).",
        ),
    ] = "0",
    limit: Annotated[int, Query(ge=1, le=500, description="Most calls in the page.")] = 100,
    step_id: Annotated[
        str | None,
        Query(max_length=64, description="Only the calls made for this step."),
    ] = None,
) -> CallList:
    await _owned(state, caller, workflow_id)
    calls, next_after = await read_calls(
        state.store, workflow_id, after=after, limit=limit, step_id=step_id
    )
    return CallList(calls=calls, next_after=next_after)


@router.post(
    "/{workflow_id}/stream-token",
    status_code=status.HTTP_201_CREATED,
    response_model=StreamTokenIssued,
    responses={201: success(examples.STREAM_TOKEN), **_NOT_FOUND},
    summary="A short-lived token to follow this workflow's events from a browser",
    description="For `EventSource`, which cannot send an `Authorization` header: open "
    "`stream_url` (the event stream with `?token=`). The token is signed, names this "
    "workflow, its tenant and this API key, and opens only this workflow's event stream "
    "(every other route, and other workflows' streams, refuse it with 401), until "
    "`expires_at` (`TRIBUTARY_GATEWAY_STREAM_TOKEN_TTL_S`) or until the key is revoked. "
    "It needs the same access as the stream: the `read` scope and the workflow's tenant.",
)
async def issue_stream_token(
    workflow_id: WorkflowId, state: State, caller: Reader
) -> StreamTokenIssued:
    record = await _owned(state, caller, workflow_id)
    grant = StreamGrant(
        workflow_id=workflow_id,
        tenant_id=record.tenant_id,
        key_id=caller.key_id,
        expires_at=int(time.time()) + state.settings.stream_token_ttl_s,
    )
    token = sign_stream_token(grant, secret=await state.stream_secret.secret())
    return StreamTokenIssued(
        token=token,
        expires_at=datetime.fromtimestamp(grant.expires_at, UTC),
        # The token is base64url and '_': nothing in it needs quoting in a URL.
        stream_url=f"/v1/workflows/{workflow_id}/events?token={token}",
    )


@stream_router.get(
    "/{workflow_id}/events",
    responses={
        200: {
            **success(
                examples.EVENT_STREAM, media_type="text/event-stream", schema={"type": "string"}
            ),
            "description": "Server-Sent Events.",
        },
        400: answer("Malformed Last-Event-ID.", errors.BAD_LAST_EVENT_ID),
        **_NOT_FOUND,
        422: answer(
            "A parameter is malformed (its name is in `loc`).",
            errors.BAD_CALLS_FLAG,
            errors.BAD_STREAM_MODE,
            model=Invalid,
        ),
        429: {
            **RATE_LIMITED[429],
            **answer(
                "Too many requests from this API key, or this replica serves its most "
                "streams, in all or for this caller; retry after `Retry-After`.",
                errors.RATE_LIMITED,
                errors.REPLICA_STREAMS_FULL,
                errors.KEY_STREAMS_FULL,
            ),
        },
    },
    summary="Follow a workflow's events live (Server-Sent Events)",
    description="Each event's `id` is its position in the workflow's log: reconnect with "
    "`Last-Event-ID` to resume after it, on any gateway replica. The stream ends after "
    "`workflow.completed`, `workflow.failed` or `workflow.cancelled`, and within "
    "`TRIBUTARY_GATEWAY_SSE_PING_S` of its API key being revoked. A client that reads "
    "slower than the workflow writes is disconnected; it reconnects with `Last-Event-ID`. "
    "A browser's `EventSource` passes a stream token as `?token=` instead of the API key; "
    "the token is checked when the stream opens, and a stream it opened goes on past its "
    "expiry (its key's revocation still ends it). "
    "`mode=tools` adds each `tool.called` record; `mode=tokens` adds, besides, the live "
    "`llm.delta` events of the agents' and the synthesizer's LLM calls: they have no `id` "
    "(they are not in the log), so resuming never repeats or skips a logged event, and the "
    "deltas sent while a client was away are not sent again.",
)
async def stream_events(
    workflow_id: WorkflowId,
    state: State,
    caller: StreamReader,
    last_event_id: Annotated[str | None, Header()] = None,
    resume_after: Annotated[
        str | None,
        Query(
            alias="last_event_id",
            description="Resume after this event id, as the `Last-Event-ID` header does (the "
            "header wins when both are sent): a new `EventSource`, opened with a fresh stream "
            "token after the last one expired, cannot send the header.",
        ),
    ] = None,
    calls: Annotated[
        bool,
        Query(
            description="Also stream the call records (`llm.called`, `tool.called`, and the "
            "`call.payload` parts that carry a large record's body before it), in any mode.",
        ),
    ] = False,
    mode: Annotated[
        StreamMode,
        Query(
            description="`lifecycle`: the workflow's events; `tools`: and its tool calls with "
            "their results (`tool.called`); `tokens`: and the live text of its agents' and "
            "synthesizer's LLM calls (`llm.delta`, without `id`).",
        ),
    ] = StreamMode.LIFECYCLE,
) -> EventSourceResponse:
    last_event_id = last_event_id if last_event_id is not None else resume_after
    if last_event_id is not None and not _STREAM_ID.match(last_event_id):
        raise HTTPException(400, "Last-Event-ID must be an event id from this stream")
    await _owned(state, caller, workflow_id)
    if not state.streams.take():
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "this gateway replica serves as many event streams as it may; retry shortly",
            headers={"Retry-After": "5"},
        )
    if not state.key_streams.take(caller.key_id, limit=state.settings.max_streams_per_key):
        state.streams.give_back()
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"this API key holds {state.settings.max_streams_per_key} event streams on this "
            "gateway replica, its most; close one or retry shortly",
            headers={"Retry-After": "5"},
        )
    return EventSourceResponse(
        _follow(
            state,
            workflow_id,
            key_id=caller.key_id,
            after=last_event_id or "0",
            shown=EventFilter(mode, calls=calls),
        ),
        ping=int(state.settings.sse_ping_s),
    )


async def _follow(
    state: State, workflow_id: str, *, key_id: str, after: str, shown: EventFilter
) -> AsyncIterator[ServerSentEvent]:
    """The workflow's log as events, until its terminal event, it is gone, or its key is;
    with ``mode=tokens``, its live deltas besides."""
    follower = state.follower.follow(workflow_id, after=after)
    durable = _logged(state, workflow_id, follower, key_id=key_id, after=after, shown=shown)
    live = (
        state.deltas.listen(workflow_id)
        if shown.mode is StreamMode.TOKENS and state.deltas is not None
        else None
    )
    events = durable if live is None else merged(durable, _deltas(live))
    try:
        async for event in events:
            yield event
    except FollowerOverrun:
        log.info("a slow event stream was closed; its client resumes with Last-Event-ID")
    finally:
        state.streams.give_back()
        state.key_streams.give_back(key_id)
        # Outermost first: the merge stops reading the others before they close.
        for opened in (events, durable, live, follower):
            await _close(opened)


async def _logged(
    state: State,
    workflow_id: str,
    follower: AsyncIterator[list[LogEntry]],
    *,
    key_id: str,
    after: str,
    shown: EventFilter,
) -> AsyncIterator[ServerSentEvent]:
    """The log's entries this stream sends, each with its log position as ``id``."""
    checked_at = time.monotonic()
    async for entries in follower:
        if time.monotonic() - checked_at >= state.settings.sse_ping_s:
            # A stream outlives the request that opened it: end it once its key is revoked.
            if await state.keys.get(key_id) is None:
                log.info("event stream ended: its API key was revoked")
                return
            checked_at = time.monotonic()
        if not entries:  # quiet for a while: has it ended without us (expired)?
            record = await state.store.get_workflow(workflow_id)
            if record is not None and not record.status.terminal:
                continue
            # Ended: what it wrote last may not have reached this stream yet.
            entries = await state.store.read_log(workflow_id, after=after, count=1000)
            if not entries:
                return
        for entry in entries:
            after = entry.stream_id
            data = shown.sent(entry)
            if data is None:
                continue
            yield ServerSentEvent(data=data, event=entry.type, id=entry.stream_id)
            if entry.type in TERMINAL_EVENT_TYPES:
                return


async def _deltas(live: AsyncIterator[LLMDelta]) -> AsyncIterator[ServerSentEvent]:
    """Live deltas as events without ``id``: a client's ``Last-Event-ID`` stays the
    position of the last logged event it received."""
    async for delta in live:
        yield ServerSentEvent(data=delta.model_dump_json(), event=delta.type)


async def _close(iterator: AsyncIterator[Any] | None) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()
