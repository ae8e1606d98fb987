"""Workflows: start one, read its state, follow its events live (SSE)."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Path, Request, Response, status
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from tributary_gateway.deps import State
from tributary_gateway.schemas import (
    CancelWorkflow,
    CreateWorkflow,
    Problem,
    WorkflowAccepted,
    WorkflowCancelledView,
    WorkflowLinks,
    WorkflowView,
)
from tributary_shared.core import machine
from tributary_shared.core.events import (
    TERMINAL_EVENT_TYPES,
    ErrorInfo,
    WorkflowFailed,
    WorkflowRequested,
    derived_event_id,
)
from tributary_shared.core.machine import TransitionConflict
from tributary_shared.core.ports import FollowerOverrun, IdempotencyKeyReused, WorkflowStore
from tributary_shared.core.status import WorkflowStatus
from tributary_shared.runtime.control import deadline_at
from tributary_shared.runtime.logs import workflow_context

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/workflows", tags=["workflows"])

WorkflowId = Annotated[str, Path(description="The id returned when the workflow was started.")]
_WORKFLOW_ID = re.compile(r"^wf_[0-9a-f]{32}$")
_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No workflow with this id."}
}


def _links(workflow_id: str) -> WorkflowLinks:
    return WorkflowLinks(
        self=f"/v1/workflows/{workflow_id}", events=f"/v1/workflows/{workflow_id}/events"
    )


def _not_found(workflow_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"workflow {workflow_id!r} not found")


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WorkflowAccepted,
    responses={
        422: {"description": "The request body is malformed; the detail says what is wrong."},
        503: {
            "model": Problem,
            "description": "Kafka could not take the request. Without an `Idempotency-Key` "
            "nothing was started: retry. With one, the workflow waits to be sent: retry with "
            "the same key, which sends it.",
        },
    },
    summary="Start a workflow",
)
async def create_workflow(
    body: CreateWorkflow,
    state: State,
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
    workflow_id = f"wf_{uuid.uuid4().hex}"
    request = WorkflowRequested(workflow_id=workflow_id, task=task, options=body.options)
    try:
        existing = await state.store.create_workflow(
            request,
            deadline_at=deadline_at(request, state.defaults),
            idempotency_key_value=idempotency_key,
        )
    except IdempotencyKeyReused as reused:
        raise HTTPException(
            422,
            f"Idempotency-Key was already used for a different request "
            f"(workflow {reused.workflow_id})",
        ) from None
    if existing is not None:
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
    current = record.status if record is not None else WorkflowStatus.PENDING
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
    return JSONResponse({"detail": detail}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)


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
    "/{workflow_id}",
    response_model=WorkflowView,
    responses=_NOT_FOUND,
    summary="A workflow's status, plan, steps, result and token usage",
)
async def get_workflow(workflow_id: WorkflowId, state: State) -> WorkflowView:
    if not _WORKFLOW_ID.match(workflow_id):
        raise _not_found(workflow_id)
    record = await state.store.get_workflow(workflow_id)
    if record is None:
        raise _not_found(workflow_id)
    budget = await state.ledger.state(workflow_id)
    return WorkflowView.of(record, budget, _links(workflow_id))


@router.post(
    "/{workflow_id}/cancel",
    response_model=WorkflowCancelledView,
    responses={
        **_NOT_FOUND,
        409: {"model": Problem, "description": "The workflow has already ended."},
    },
    summary="Cancel a workflow: running steps stop, pending ones never start",
)
async def cancel_workflow(
    workflow_id: WorkflowId, state: State, body: CancelWorkflow | None = None
) -> WorkflowCancelledView:
    if not _WORKFLOW_ID.match(workflow_id):
        raise _not_found(workflow_id)
    record = await state.store.get_workflow(workflow_id)
    if record is None:
        raise _not_found(workflow_id)
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


@router.get(
    "/{workflow_id}/events",
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events."},
        400: {"model": Problem, "description": "Malformed Last-Event-ID."},
        **_NOT_FOUND,
        429: {"model": Problem, "description": "This replica serves its most streams."},
    },
    summary="Follow a workflow's events live (Server-Sent Events)",
    description="Each event's `id` is its position in the workflow's log: reconnect with "
    "`Last-Event-ID` to resume after it, on any gateway replica. The stream ends after "
    "`workflow.completed`, `workflow.failed` or `workflow.cancelled`. A client that reads "
    "slower than the workflow writes is disconnected; it reconnects with `Last-Event-ID`.",
)
async def stream_events(
    workflow_id: WorkflowId,
    state: State,
    request: Request,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    if not _WORKFLOW_ID.match(workflow_id):
        raise _not_found(workflow_id)
    if last_event_id is not None and not _STREAM_ID.match(last_event_id):
        raise HTTPException(400, "Last-Event-ID must be an event id from this stream")
    if await state.store.get_workflow(workflow_id) is None:
        raise _not_found(workflow_id)
    if not state.streams.take():
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "this gateway replica serves as many event streams as it may; retry shortly",
            headers={"Retry-After": "5"},
        )
    return EventSourceResponse(
        _follow(state, workflow_id, after=last_event_id or "0"),
        ping=int(state.settings.sse_ping_s),
    )


async def _follow(state: State, workflow_id: str, *, after: str) -> AsyncIterator[ServerSentEvent]:
    """The workflow's log as events, until its terminal event (or it is gone)."""
    follower = state.follower.follow(workflow_id, after=after)
    try:
        async for entries in follower:
            if not entries:  # quiet for a while: has it ended without us (expired)?
                record = await state.store.get_workflow(workflow_id)
                if record is None or record.status.terminal:
                    return
                continue
            for entry in entries:
                yield ServerSentEvent(data=entry.event_json, event=entry.type, id=entry.stream_id)
                if entry.type in TERMINAL_EVENT_TYPES:
                    return
    except FollowerOverrun:
        log.info("a slow event stream was closed; its client resumes with Last-Event-ID")
    finally:
        state.streams.give_back()
        await follower.aclose()  # type: ignore[attr-defined]
