"""The blocking client."""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
from httpx_sse import EventSource, SSEError
from pydantic import BaseModel

from tributary_client import _requests
from tributary_client._config import DEFAULT_TIMEOUT, resolve_config
from tributary_client._errors import TributaryError, error_from_response
from tributary_client._events import WorkflowEvent
from tributary_client._models import (
    CallList,
    Key,
    KeyCreated,
    KeyList,
    RecordedCall,
    StreamMode,
    StreamToken,
    Workflow,
    WorkflowAccepted,
    WorkflowCancelled,
    WorkflowOptions,
    WorkflowPage,
    WorkflowSummary,
)
from tributary_client._resume import Resumption, as_connection_error
from tributary_client._retry import RetryPolicy
from tributary_client._shared import (
    accepted,
    client_headers,
    read_timeout_until,
    remaining,
    wait_timed_out,
)

__all__ = ["Tributary"]

M = TypeVar("M", bound=BaseModel)

# Looked up at each call, so tests can count the waits instead of sitting through them.
_sleep = time.sleep


class Tributary:
    """A client of the Tributary HTTP API.

    ``base_url`` and ``api_key`` default to ``TRIBUTARY_URL`` and
    ``TRIBUTARY_API_KEY``. Pass ``transport`` (e.g. ``httpx.MockTransport``) or
    a whole ``http_client`` to change how requests travel; a given
    ``http_client`` stays open when this client closes.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._config = resolve_config(base_url, api_key, env=env)
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.retry = retry or RetryPolicy()
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(transport=transport, timeout=self._timeout)
        self._headers = client_headers(self._config.api_key)

    @property
    def base_url(self) -> str:
        return self._config.base_url

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # Workflows

    def start(
        self,
        task: str,
        *,
        max_steps: int | None = None,
        token_budget: int | None = None,
        cost_budget_usd: float | None = None,
        deadline_s: int | None = None,
        on_budget_exhausted: str | None = None,
        require_plan_approval: bool | None = None,
        input_timeout_s: int | None = None,
        on_input_timeout: str | None = None,
        metadata: Mapping[str, str | int | float | bool] | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        tenant_id: str | None = None,
    ) -> WorkflowAccepted:
        """Start a workflow; it runs on its own. ``idempotency_key`` makes retries safe."""
        options = WorkflowOptions(
            max_steps=max_steps,
            token_budget=token_budget,
            cost_budget_usd=cost_budget_usd,
            deadline_s=deadline_s,
            on_budget_exhausted=on_budget_exhausted,
            require_plan_approval=require_plan_approval,
            input_timeout_s=input_timeout_s,
            on_input_timeout=on_input_timeout,
            metadata=dict(metadata or {}),
            callback_url=callback_url,
        )
        response = self._send(
            _requests.start(
                task, options=options, tenant_id=tenant_id, idempotency_key=idempotency_key
            )
        )
        return accepted(response)

    def get(self, workflow_id: str) -> Workflow:
        """The workflow's state: status, steps, result, usage, budget."""
        return self._model(Workflow, _requests.get(workflow_id))

    def list(
        self,
        *,
        limit: int = 20,
        cursor: str | None = None,
        tenant: str | None = None,
        status: Sequence[str] = (),
    ) -> WorkflowPage:
        """One page of workflows, newest first; pass ``next_cursor`` back as ``cursor``.

        ``status`` keeps workflows in one of these statuses; the next page needs
        the same filter along with ``cursor``.
        """
        return self._model(
            WorkflowPage,
            _requests.list_page(limit=limit, cursor=cursor, tenant=tenant, status=status),
        )

    def iter_workflows(
        self, *, page_size: int = 100, tenant: str | None = None, status: Sequence[str] = ()
    ) -> Iterator[WorkflowSummary]:
        """Every workflow, newest first, fetching pages as it goes."""
        cursor: str | None = None
        while True:
            page = self.list(limit=page_size, cursor=cursor, tenant=tenant, status=status)
            yield from page.workflows
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def cancel(self, workflow_id: str, *, reason: str | None = None) -> WorkflowCancelled:
        """Cancel a running workflow; ``ConflictError`` if it has already ended."""
        return self._model(WorkflowCancelled, _requests.cancel(workflow_id, reason=reason))

    def calls(
        self, workflow_id: str, *, step_id: str | None = None, page_size: int = 100
    ) -> Iterator[RecordedCall]:
        """The workflow's recorded LLM and tool calls so far, in order, over every page."""
        after = "0"
        while True:
            page = self._model(
                CallList,
                _requests.calls_page(workflow_id, after=after, limit=page_size, step_id=step_id),
            )
            yield from page.calls
            if page.next_after is None:
                return
            after = page.next_after

    def input(self, workflow_id: str, *, request_id: str, answer: Any) -> None:
        """Answer a workflow's request for input (``request_id`` names the request).

        Needs a gateway that serves ``POST /v1/workflows/{id}/input``.
        """
        self._send(_requests.input_answer(workflow_id, request_id=request_id, answer=answer))

    def stream_token(self, workflow_id: str) -> StreamToken:
        """A short-lived token that opens this workflow's event stream without the API key.

        For a page's ``EventSource``, which cannot send the key: give it ``stream_url``.
        Needs the ``read`` scope; the gateway says how long it lasts (``expires_at``).
        """
        return self._model(StreamToken, _requests.stream_token(workflow_id))

    def delete(self, workflow_id: str) -> None:
        """Delete an ended workflow; ``ConflictError`` while it runs.

        Needs a gateway that serves ``DELETE /v1/workflows/{id}``.
        """
        self._send(_requests.delete(workflow_id))

    # Following a workflow

    def stream(
        self,
        workflow_id: str,
        *,
        last_event_id: str | None = None,
        calls: bool = False,
        mode: StreamMode | str = StreamMode.LIFECYCLE,
    ) -> Iterator[WorkflowEvent]:
        """The workflow's events, live, until its last one (completed, failed or cancelled).

        A dropped connection, or a 429/5xx answer, is ridden out: it reconnects
        with ``Last-Event-ID`` (after ``Retry-After`` or a backoff), so no
        event is missed or repeated. ``mode="tools"`` adds each tool call and its
        result; ``mode="tokens"`` adds, besides, the live text of the LLM calls
        (``llm.delta`` events, ``event.token_delta()``), which are not in the log:
        those sent while the stream was reconnecting are not sent again.
        ``calls=True`` adds every call record (in any mode).
        """
        return self._follow(
            Resumption(
                workflow_id,
                last_event_id=last_event_id,
                calls=calls,
                policy=self.retry,
                mode=mode,
            ),
            deadline=None,
        )

    def wait(
        self,
        workflow_id: str,
        *,
        timeout: float | None = None,
        on_event: Callable[[WorkflowEvent], object] | None = None,
        mode: StreamMode | str = StreamMode.LIFECYCLE,
    ) -> Workflow:
        """Block until the workflow ends; its final state.

        Follows the event stream (riding out dropped connections) to the last
        event, then reads the workflow. ``WaitTimeoutError`` once ``timeout``
        seconds have passed first. ``on_event`` sees each event once, in order;
        ``mode`` says which (as for ``stream``).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        resumption = Resumption(
            workflow_id, last_event_id=None, calls=False, policy=self.retry, mode=mode
        )
        for event in self._follow(resumption, deadline=deadline):
            if on_event is not None:
                on_event(event)
            if deadline is not None and remaining(deadline) <= 0 and not resumption.finished:
                raise wait_timed_out(resumption)
        return self.get(workflow_id)

    def _follow(self, resumption: Resumption, *, deadline: float | None) -> Iterator[WorkflowEvent]:
        while True:
            try:
                yield from self._connection(resumption, deadline)
                if resumption.finished:
                    return
                error: TributaryError = resumption.ended_early()
            except TributaryError as failed:
                error = failed
            delay = resumption.retry_delay(error)  # raises the errors that retrying cannot fix
            if deadline is not None:
                if remaining(deadline) <= 0:
                    raise wait_timed_out(resumption) from error
                delay = min(delay, remaining(deadline))
            _sleep(delay)

    def _connection(
        self, resumption: Resumption, deadline: float | None
    ) -> Iterator[WorkflowEvent]:
        request = resumption.request()
        timeout = read_timeout_until(self._timeout, deadline)
        try:
            with self._http.stream(
                request.method,
                self._url(request.path),
                params=dict(request.params),
                headers={**self._headers, **request.headers},
                timeout=timeout,
            ) as response:
                if response.is_error:
                    response.read()
                    raise error_from_response(response)
                for sse in EventSource(response).iter_sse():
                    event = WorkflowEvent.decode(event=sse.event, id=sse.id, data=sse.data)
                    if resumption.accept(event):
                        yield event
                    if resumption.finished:
                        return
        except httpx.TransportError as error:
            raise as_connection_error(error) from error
        except SSEError as error:
            raise TributaryError(f"not an event stream: {error}") from error

    # API keys (admin keys only)

    def create_key(
        self, tenant_id: str, *, scopes: builtins.list[str] | None = None, label: str = ""
    ) -> KeyCreated:
        """Issue a key for ``tenant_id``; the answer's ``key`` is shown only this once."""
        return self._model(
            KeyCreated, _requests.create_key(tenant_id=tenant_id, scopes=scopes, label=label)
        )

    def list_keys(self, *, tenant: str | None = None) -> builtins.list[Key]:
        """The API keys (never the keys themselves), oldest first."""
        return self._model(KeyList, _requests.list_keys(tenant=tenant)).keys

    def revoke_key(self, key_id: str) -> None:
        """Revoke a key: every gateway replica refuses it from its next request on."""
        self._send(_requests.revoke_key(key_id))

    # Plumbing

    def _url(self, path: str) -> str:
        return self._config.base_url + path

    def _model(self, model: type[M], request: _requests.Request) -> M:
        return model.model_validate(self._send(request).json())

    def _send(self, request: _requests.Request) -> httpx.Response:
        try:
            response = self._http.request(
                request.method,
                self._url(request.path),
                params=dict(request.params),
                json=request.json,
                headers={**self._headers, **request.headers},
                timeout=self._timeout,
            )
        except httpx.TransportError as error:
            raise as_connection_error(error) from error
        if response.is_error:
            raise error_from_response(response)
        return response
