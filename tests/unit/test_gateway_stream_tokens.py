"""Stream tokens on the gateway: a browser's EventSource follows a workflow with
``?token=`` instead of an Authorization header, and the token opens nothing else."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.support.gateway_twins import gateway_over_twins
from tests.support.keys import bearer, issue
from tributary_devstack.sse import SseParser
from tributary_gateway import stream_access
from tributary_gateway.settings import GatewaySettings
from tributary_shared.core import machine
from tributary_shared.core.access import Scope
from tributary_shared.core.events import WorkflowCancelled, WorkflowRequested
from tributary_shared.twins import MemoryApiKeyStore, MemoryPublisher, MemoryWorkflowStore


@pytest.fixture
def store() -> MemoryWorkflowStore:
    return MemoryWorkflowStore()


@pytest.fixture
def keys() -> MemoryApiKeyStore:
    return MemoryApiKeyStore()


@pytest.fixture
async def gateway(
    store: MemoryWorkflowStore, keys: MemoryApiKeyStore
) -> AsyncIterator[httpx.AsyncClient]:
    """A client that sends no key of its own: each request says what it carries."""
    async with gateway_over_twins(
        store=store,
        publisher=MemoryPublisher(),
        keys=keys,
        settings=GatewaySettings(sse_ping_s=0.5, stream_token_ttl_s=60),
    ) as client:
        yield client


async def ended_workflow(store: MemoryWorkflowStore, tenant_id: str = "acme") -> str:
    """A workflow of ``tenant_id`` that has ended, so its stream ends after two events."""
    workflow_id = f"wf_{uuid.uuid4().hex}"
    await store.create_workflow(
        WorkflowRequested(workflow_id=workflow_id, tenant_id=tenant_id, task="t"),
        deadline_at=time.time() + 600,
    )
    await store.apply(machine.cancel(WorkflowCancelled(workflow_id=workflow_id)))
    return workflow_id


def event_types(body: str) -> list[str]:
    parser = SseParser()
    parsed = (parser.feed(line) for line in body.splitlines())
    return [event.event for event in parsed if event is not None]


async def stream_token(gateway: httpx.AsyncClient, key: str, workflow_id: str) -> dict[str, Any]:
    response = await gateway.post(f"/v1/workflows/{workflow_id}/stream-token", headers=bearer(key))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_stream_token_follows_the_stream_without_an_authorization_header(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, keys: MemoryApiKeyStore
) -> None:
    workflow_id = await ended_workflow(store)
    issued = await stream_token(gateway, await issue(keys, "acme"), workflow_id)
    assert issued["stream_url"] == f"/v1/workflows/{workflow_id}/events?token={issued['token']}"
    remaining = datetime.fromisoformat(issued["expires_at"]).timestamp() - time.time()
    assert 50 < remaining <= 60

    response = await gateway.get(issued["stream_url"])

    assert "authorization" not in response.request.headers
    assert response.status_code == 200, response.text
    assert event_types(response.text) == ["workflow.requested", "workflow.cancelled"]


async def test_without_a_key_or_a_token_the_stream_is_refused(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore
) -> None:
    workflow_id = await ended_workflow(store)
    response = await gateway.get(f"/v1/workflows/{workflow_id}/events")
    assert response.status_code == 401


async def test_a_key_still_follows_the_stream(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, keys: MemoryApiKeyStore
) -> None:
    workflow_id = await ended_workflow(store)
    response = await gateway.get(
        f"/v1/workflows/{workflow_id}/events", headers=bearer(await issue(keys, "acme"))
    )
    assert event_types(response.text) == ["workflow.requested", "workflow.cancelled"]


async def test_a_token_opens_no_other_workflows_stream(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, keys: MemoryApiKeyStore
) -> None:
    key = await issue(keys, "acme")
    mine, other = await ended_workflow(store), await ended_workflow(store)
    token = (await stream_token(gateway, key, mine))["token"]

    response = await gateway.get(f"/v1/workflows/{other}/events", params={"token": token})

    assert response.status_code == 401
    assert token not in response.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/workflows/{id}"),
        ("GET", "/v1/workflows/{id}/calls"),
        ("GET", "/v1/workflows"),
        ("POST", "/v1/workflows/{id}/cancel"),
        ("POST", "/v1/workflows/{id}/stream-token"),
        ("DELETE", "/v1/workflows/{id}"),
        ("GET", "/v1/keys"),
    ],
)
async def test_a_token_opens_no_other_route(
    gateway: httpx.AsyncClient,
    store: MemoryWorkflowStore,
    keys: MemoryApiKeyStore,
    method: str,
    path: str,
) -> None:
    workflow_id = await ended_workflow(store)
    token = (await stream_token(gateway, await issue(keys, "acme"), workflow_id))["token"]
    url = path.format(id=workflow_id)

    as_query = await gateway.request(method, url, params={"token": token})
    as_bearer = await gateway.request(method, url, headers=bearer(token))

    assert (as_query.status_code, as_bearer.status_code) == (401, 401)
    assert token not in as_query.text + as_bearer.text


async def test_a_token_stops_working_once_its_key_is_revoked(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, keys: MemoryApiKeyStore
) -> None:
    key = await issue(keys, "acme")
    workflow_id = await ended_workflow(store)
    issued = await stream_token(gateway, key, workflow_id)
    key_id = key.split("_")[1]
    assert await keys.revoke(key_id)

    response = await gateway.get(issued["stream_url"])

    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


async def test_an_expired_token_opens_no_new_stream(
    gateway: httpx.AsyncClient,
    store: MemoryWorkflowStore,
    keys: MemoryApiKeyStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workflow_id = await ended_workflow(store)
    issued = await stream_token(gateway, await issue(keys, "acme"), workflow_id)
    expires_at = datetime.fromisoformat(issued["expires_at"]).timestamp()

    class AfterExpiry:
        @staticmethod
        def time() -> float:
            return expires_at + 1

    monkeypatch.setattr(stream_access, "time", AfterExpiry)
    response = await gateway.get(issued["stream_url"])

    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


async def test_a_token_is_only_issued_for_a_workflow_the_key_may_read(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, keys: MemoryApiKeyStore
) -> None:
    workflow_id = await ended_workflow(store, tenant_id="acme")
    path = f"/v1/workflows/{workflow_id}/stream-token"

    other_tenant = await gateway.post(path, headers=bearer(await issue(keys, "globex")))
    no_read = await gateway.post(
        path, headers=bearer(await issue(keys, "acme", scopes=[Scope.START]))
    )
    no_key = await gateway.post(path)

    assert (other_tenant.status_code, no_read.status_code, no_key.status_code) == (404, 403, 401)


async def test_an_admin_key_gets_a_token_for_another_tenants_workflow(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, keys: MemoryApiKeyStore
) -> None:
    workflow_id = await ended_workflow(store, tenant_id="acme")
    admin = await issue(keys, "ops", scopes=[Scope.ADMIN])
    issued = await stream_token(gateway, admin, workflow_id)

    response = await gateway.get(issued["stream_url"])

    assert event_types(response.text) == ["workflow.requested", "workflow.cancelled"]
