"""API keys and tenants at the gateway: no key, no answer; another tenant's workflow is unknown.

The real gateway app runs on the in-memory twins. What a client relies on:
every ``/v1`` route answers 401 without a valid key and 403 without the
scope; a key of tenant B gets, for tenant A's workflow, exactly the answer an
unknown id gets, on every route; an admin key sees every tenant; a revoked key
is refused from the next request on, and its open event streams end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable

import httpx
import pytest

from tests.support.gateway_twins import gateway_over_twins
from tests.support.keys import bearer, issue
from tributary_gateway.settings import GatewaySettings
from tributary_shared.core import machine
from tributary_shared.core.access import ApiKeyRecord, Scope, parse_key
from tributary_shared.core.events import WorkflowRequested
from tributary_shared.core.status import WorkflowStatus
from tributary_shared.twins import MemoryApiKeyStore, MemoryPublisher, MemoryWorkflowStore

UNKNOWN = "wf_" + "0" * 32
PING_S = 1.0


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
    async with gateway_over_twins(
        store=store,
        publisher=MemoryPublisher(),
        keys=keys,
        settings=GatewaySettings(sse_ping_s=PING_S),
    ) as client:
        yield client


async def key_of(
    keys: MemoryApiKeyStore, tenant_id: str, scopes: Iterable[Scope] | None = None
) -> dict[str, str]:
    if scopes is None:
        return bearer(await issue(keys, tenant_id))
    return bearer(await issue(keys, tenant_id, scopes=scopes))


async def started(gateway: httpx.AsyncClient, key: dict[str, str], **body: object) -> str:
    answer = await gateway.post("/v1/workflows", json={"task": "Summarise", **body}, headers=key)
    assert answer.status_code == 202, answer.text
    workflow_id: str = answer.json()["workflow_id"]
    return workflow_id


async def running(store: MemoryWorkflowStore, tenant_id: str) -> str:
    """A workflow of ``tenant_id`` that is planning (so it can be cancelled)."""
    request = WorkflowRequested(
        workflow_id=f"wf_{tenant_id[:1] * 32}", tenant_id=tenant_id, task="Summarise"
    )
    await store.create_workflow(request, deadline_at=time.time() + 600)
    now = time.time()
    await store.apply(
        machine.start_planning(request.workflow_id, owner="planner", lease_until=now + 60, now=now)
    )
    return request.workflow_id


def v1_operations(openapi: dict[str, object]) -> list[tuple[str, str]]:
    paths = openapi["paths"]
    assert isinstance(paths, dict)
    operations: list[tuple[str, str]] = []
    for path, methods in paths.items():
        if not path.startswith("/v1"):
            continue
        concrete = path.replace("{workflow_id}", UNKNOWN).replace("{key_id}", "0" * 12)
        operations.extend((method.upper(), concrete) for method in methods)
    return operations


# --- 401 -------------------------------------------------------------------------------


async def test_every_v1_route_refuses_a_request_without_a_valid_key(
    gateway: httpx.AsyncClient, keys: MemoryApiKeyStore
) -> None:
    operations = v1_operations((await gateway.get("/openapi.json")).json())
    assert ("GET", "/v1/workflows") in operations
    assert ("POST", "/v1/keys") in operations
    assert len(operations) >= 7
    well_formed_unknown = "trb_" + "a" * 12 + "_" + "B" * 40
    for method, path in operations:
        for headers, challenge in [
            ({}, "Bearer"),
            ({"Authorization": "Bearer not-a-key"}, 'Bearer error="invalid_token"'),
            (bearer(well_formed_unknown), 'Bearer error="invalid_token"'),
            ({"Authorization": "Basic dXNlcjpwYXNz"}, "Bearer"),
        ]:
            answer = await gateway.request(method, path, headers=headers, json={"task": "x"})
            assert answer.status_code == 401, (method, path, headers, answer.text)
            assert answer.headers["WWW-Authenticate"] == challenge


async def test_a_key_with_a_wrong_secret_is_refused(
    gateway: httpx.AsyncClient, keys: MemoryApiKeyStore
) -> None:
    key = await issue(keys, "acme")
    presented = parse_key(key)
    assert presented is not None
    forged = key[:-1] + ("x" if key[-1] != "x" else "y")  # same key id, another secret
    answer = await gateway.get("/v1/workflows", headers=bearer(forged))
    assert answer.status_code == 401
    assert (await gateway.get("/v1/workflows", headers=bearer(key))).status_code == 200


async def test_health_and_the_api_description_need_no_key(gateway: httpx.AsyncClient) -> None:
    assert (await gateway.get("/healthz")).status_code == 200
    described = (await gateway.get("/openapi.json")).json()
    assert described["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    for path, methods in described["paths"].items():
        for method, operation in methods.items():
            if path.startswith("/v1"):
                assert operation.get("security") == [{"ApiKey": []}], (method, path)
                assert "401" in operation["responses"], (method, path)


# --- 403 -------------------------------------------------------------------------------


async def test_a_key_without_the_scope_is_forbidden(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, keys: MemoryApiKeyStore
) -> None:
    reader = await key_of(keys, "acme", [Scope.READ])
    starter = await key_of(keys, "acme", [Scope.START])
    workflow_id = await running(store, "acme")

    refused = await gateway.post("/v1/workflows", json={"task": "x"}, headers=reader)
    assert refused.status_code == 403
    assert "'start' scope" in refused.json()["detail"]
    assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
    assert (await gateway.get(f"/v1/workflows/{workflow_id}", headers=starter)).status_code == 403
    assert (await gateway.get("/v1/workflows", headers=starter)).status_code == 403
    cancel = await gateway.post(f"/v1/workflows/{workflow_id}/cancel", headers=reader)
    assert cancel.status_code == 403
    assert store.records[workflow_id].status is WorkflowStatus.PLANNING
    for method, path in [("GET", "/v1/keys"), ("DELETE", "/v1/keys/" + "0" * 12)]:
        assert (await gateway.request(method, path, headers=reader)).status_code == 403
    created = await gateway.post("/v1/keys", json={"tenant_id": "acme"}, headers=reader)
    assert created.status_code == 403
    assert len(keys.records) == 2


async def test_only_an_admin_key_starts_or_lists_for_another_tenant(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, keys: MemoryApiKeyStore
) -> None:
    acme = await key_of(keys, "acme")
    admin = await key_of(keys, "ops", [Scope.ADMIN])
    refused = await gateway.post(
        "/v1/workflows", json={"task": "x", "tenant_id": "globex"}, headers=acme
    )
    assert refused.status_code == 403
    assert store.records == {}
    assert (await gateway.get("/v1/workflows?tenant=globex", headers=acme)).status_code == 403

    own = await started(gateway, acme, tenant_id="acme")
    assert store.records[own].tenant_id == "acme"
    for_globex = await started(gateway, admin, tenant_id="globex")
    assert store.records[for_globex].tenant_id == "globex"
    by_admin = await started(gateway, admin)
    assert store.records[by_admin].tenant_id == "ops"


# --- tenants ---------------------------------------------------------------------------


async def test_another_tenants_workflow_is_answered_as_an_unknown_one(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, keys: MemoryApiKeyStore
) -> None:
    theirs = await running(store, "acme")
    mine = await key_of(keys, "globex", [Scope.READ, Scope.CANCEL, Scope.START])
    for method, suffix in [("GET", ""), ("GET", "/events"), ("POST", "/cancel")]:
        foreign = await gateway.request(method, f"/v1/workflows/{theirs}{suffix}", headers=mine)
        unknown = await gateway.request(method, f"/v1/workflows/{UNKNOWN}{suffix}", headers=mine)
        assert foreign.status_code == unknown.status_code == 404, (method, suffix)
        assert foreign.json()["detail"] == unknown.json()["detail"].replace(UNKNOWN, theirs)
        assert set(foreign.headers) == set(unknown.headers)
    assert store.records[theirs].status is WorkflowStatus.PLANNING, "the cancel was refused"
    listed = (await gateway.get("/v1/workflows", headers=mine)).json()
    assert listed == {"workflows": [], "next_cursor": None}


async def test_a_tenant_lists_reads_and_follows_its_own_workflows(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, keys: MemoryApiKeyStore
) -> None:
    acme, globex = await key_of(keys, "acme"), await key_of(keys, "globex")
    first = await started(gateway, acme)
    await started(gateway, globex)
    second = await started(gateway, acme)
    listed = (await gateway.get("/v1/workflows", headers=acme)).json()
    assert [w["workflow_id"] for w in listed["workflows"]] == [second, first]
    assert {w["tenant_id"] for w in listed["workflows"]} == {"acme"}
    shown = await gateway.get(f"/v1/workflows/{first}", headers=acme)
    assert shown.status_code == 200
    assert shown.json()["tenant_id"] == "acme"

    page = (await gateway.get("/v1/workflows?limit=1", headers=acme)).json()
    assert [w["workflow_id"] for w in page["workflows"]] == [second]
    rest = await gateway.get(
        "/v1/workflows", params={"limit": 1, "cursor": page["next_cursor"]}, headers=acme
    )
    assert [w["workflow_id"] for w in rest.json()["workflows"]] == [first]
    bad_cursor = await gateway.get("/v1/workflows?cursor=zzz", headers=acme)
    assert bad_cursor.status_code == 422


async def test_an_admin_key_sees_every_tenant(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, keys: MemoryApiKeyStore
) -> None:
    admin = await key_of(keys, "ops", [Scope.ADMIN])
    acme = await started(gateway, await key_of(keys, "acme"))
    globex = await started(gateway, await key_of(keys, "globex"))
    assert (await gateway.get(f"/v1/workflows/{acme}", headers=admin)).status_code == 200
    everyone = (await gateway.get("/v1/workflows", headers=admin)).json()["workflows"]
    assert [w["workflow_id"] for w in everyone] == [globex, acme]
    only = (await gateway.get("/v1/workflows?tenant=acme", headers=admin)).json()["workflows"]
    assert [w["workflow_id"] for w in only] == [acme]
    cancelled = await gateway.post(f"/v1/workflows/{globex}/cancel", headers=admin)
    assert cancelled.status_code == 200
    assert store.records[globex].status is WorkflowStatus.CANCELLED


async def test_idempotency_keys_are_per_tenant(
    gateway: httpx.AsyncClient, keys: MemoryApiKeyStore
) -> None:
    same = {"Idempotency-Key": "order-42"}
    acme = await started_with(gateway, {**await key_of(keys, "acme"), **same})
    globex = await started_with(gateway, {**await key_of(keys, "globex"), **same})
    assert acme != globex


async def started_with(gateway: httpx.AsyncClient, headers: dict[str, str]) -> str:
    answer = await gateway.post("/v1/workflows", json={"task": "Summarise"}, headers=headers)
    assert answer.status_code == 202, answer.text
    assert "Idempotent-Replayed" not in answer.headers
    workflow_id: str = answer.json()["workflow_id"]
    return workflow_id


# --- revocation and the key endpoints ---------------------------------------------------


async def test_a_revoked_key_is_refused_from_the_next_request_on(
    gateway: httpx.AsyncClient, keys: MemoryApiKeyStore
) -> None:
    admin = await key_of(keys, "ops", [Scope.ADMIN])
    created = await gateway.post(
        "/v1/keys", json={"tenant_id": "acme", "label": "ci"}, headers=admin
    )
    assert created.status_code == 201
    issued = created.json()
    assert issued["scopes"] == ["cancel", "input", "read", "start"]
    key = bearer(issued["key"])
    assert (await gateway.get("/v1/workflows", headers=key)).status_code == 200

    listed = await gateway.get("/v1/keys?tenant=acme", headers=admin)
    assert [k["key_id"] for k in listed.json()["keys"]] == [issued["key_id"]]
    assert issued["key"] not in listed.text
    assert keys.records[issued["key_id"]].secret_sha256 not in listed.text

    assert (await gateway.delete(f"/v1/keys/{issued['key_id']}", headers=admin)).status_code == 204
    assert (await gateway.get("/v1/workflows", headers=key)).status_code == 401
    again = await gateway.delete(f"/v1/keys/{issued['key_id']}", headers=admin)
    assert again.status_code == 404


async def test_an_open_event_stream_ends_once_its_key_is_revoked(
    gateway: httpx.AsyncClient,
    store: MemoryWorkflowStore,
    keys: MemoryApiKeyStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = await issue(keys, "acme")
    workflow_id = await running(store, "acme")
    stored = keys.get

    async def revoked_once_used(key_id: str) -> ApiKeyRecord | None:
        record = await stored(key_id)
        await keys.revoke(key_id)  # right after the request that opens the stream
        return record

    monkeypatch.setattr(keys, "get", revoked_once_used)
    # The test client hands over the body once the stream has ended: it must end.
    async with asyncio.timeout(PING_S * 10):
        answer = await gateway.get(f"/v1/workflows/{workflow_id}/events", headers=bearer(key))
    assert answer.status_code == 200
    assert "event: workflow.requested" in answer.text
    assert store.records[workflow_id].status is WorkflowStatus.PLANNING, "it ended by itself"


async def test_a_malformed_key_request_is_refused_before_it_is_stored(
    gateway: httpx.AsyncClient, keys: MemoryApiKeyStore
) -> None:
    admin = await key_of(keys, "ops", [Scope.ADMIN])
    for body in [
        {"tenant_id": "a:b"},
        {"tenant_id": ""},
        {"tenant_id": "acme", "scopes": []},
        {"tenant_id": "acme", "scopes": ["everything"]},
    ]:
        answer = await gateway.post("/v1/keys", json=body, headers=admin)
        assert answer.status_code == 422, body
    assert len(keys.records) == 1
