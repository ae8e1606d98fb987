"""Every API call as a plain request description, shared by the sync and async clients.

Nothing here does I/O: a client turns a ``Request`` into an HTTP request and
its answer into a model, so both clients send exactly the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from tributary_client._models import WorkflowOptions

__all__ = [
    "Request",
    "calls_page",
    "cancel",
    "create_key",
    "delete",
    "events",
    "get",
    "input_answer",
    "list_keys",
    "list_page",
    "revoke_key",
    "start",
    "stream_token",
]


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    params: Mapping[str, str | int | bool | Sequence[str]] = field(default_factory=dict)
    """A sequence value repeats its parameter (``?status=a&status=b``)."""
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


def _workflow(workflow_id: str, tail: str = "") -> str:
    # Quoted whole: an id never escapes its path segment, whatever it holds.
    return f"/v1/workflows/{quote(workflow_id, safe='')}{tail}"


def start(
    task: str,
    *,
    options: WorkflowOptions,
    tenant_id: str | None,
    idempotency_key: str | None,
) -> Request:
    body: dict[str, Any] = {"task": task, "options": options.model_dump(exclude_none=True)}
    if not body["options"]["metadata"]:
        del body["options"]["metadata"]
    if tenant_id is not None:
        body["tenant_id"] = tenant_id
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else {}
    return Request("POST", "/v1/workflows", json=body, headers=headers)


def get(workflow_id: str) -> Request:
    return Request("GET", _workflow(workflow_id))


def list_page(
    *, limit: int, cursor: str | None, tenant: str | None, status: Sequence[str] = ()
) -> Request:
    params: dict[str, str | int | bool | Sequence[str]] = {"limit": limit}
    if cursor is not None:
        params["cursor"] = cursor
    if tenant is not None:
        params["tenant"] = tenant
    if status:
        params["status"] = [str(value) for value in status]
    return Request("GET", "/v1/workflows", params=params)


def cancel(workflow_id: str, *, reason: str | None) -> Request:
    return Request(
        "POST", _workflow(workflow_id, "/cancel"), json={"reason": reason} if reason else {}
    )


def calls_page(workflow_id: str, *, after: str, limit: int, step_id: str | None) -> Request:
    params: dict[str, str | int | bool] = {"after": after, "limit": limit}
    if step_id is not None:
        params["step_id"] = step_id
    return Request("GET", _workflow(workflow_id, "/calls"), params=params)


def input_answer(workflow_id: str, *, request_id: str, answer: Any) -> Request:
    return Request(
        "POST", _workflow(workflow_id, "/input"), json={"request_id": request_id, "answer": answer}
    )


def delete(workflow_id: str) -> Request:
    return Request("DELETE", _workflow(workflow_id))


def events(
    workflow_id: str, *, last_event_id: str | None, calls: bool, mode: str = "lifecycle"
) -> Request:
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    params: dict[str, str | int | bool] = {"calls": "true"} if calls else {}
    if mode != "lifecycle":
        params["mode"] = mode
    return Request("GET", _workflow(workflow_id, "/events"), params=params, headers=headers)


def stream_token(workflow_id: str) -> Request:
    return Request("POST", _workflow(workflow_id, "/stream-token"))


def create_key(*, tenant_id: str, scopes: list[str] | None, label: str) -> Request:
    body: dict[str, Any] = {"tenant_id": tenant_id, "label": label}
    if scopes is not None:
        body["scopes"] = scopes
    return Request("POST", "/v1/keys", json=body)


def list_keys(*, tenant: str | None) -> Request:
    return Request("GET", "/v1/keys", params={"tenant": tenant} if tenant is not None else {})


def revoke_key(key_id: str) -> Request:
    return Request("DELETE", f"/v1/keys/{quote(key_id, safe='')}")
