"""Listing with filters and deleting workflows at the gateway, over the in-memory twins.

What a client relies on: filters (status, creation time, metadata) combine and
page correctly, per tenant; a bad filter is a 422 that names the parameter;
an ended workflow is deleted (204, then 404 everywhere), a running one is not
(409); deleting needs the ``delete`` scope, and another tenant's workflow is
answered as an unknown one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

import httpx
import pytest

from tests.support.gateway_twins import gateway_over_twins
from tests.support.keys import bearer, issue
from tributary_shared.core.access import DEFAULT_SCOPES, Scope
from tributary_shared.core.status import WorkflowStatus
from tributary_shared.twins import MemoryApiKeyStore, MemoryPublisher, MemoryWorkflowStore

UNKNOWN = "wf_" + "0" * 32
EVERYTHING = [Scope.START, Scope.READ, Scope.CANCEL, Scope.DELETE]
Params = list[tuple[str, str | int | float | bool | None]]


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
    async with gateway_over_twins(store=store, publisher=MemoryPublisher(), keys=keys) as client:
        yield client


async def key_of(
    keys: MemoryApiKeyStore, tenant_id: str, scopes: list[Scope] | None = None
) -> dict[str, str]:
    return bearer(await issue(keys, tenant_id, scopes=scopes or EVERYTHING))


async def started(
    gateway: httpx.AsyncClient, key: dict[str, str], metadata: dict[str, str] | None = None
) -> str:
    body = {"task": "Summarise", "options": {"metadata": metadata or {}}}
    answer = await gateway.post("/v1/workflows", json=body, headers=key)
    assert answer.status_code == 202, answer.text
    workflow_id: str = answer.json()["workflow_id"]
    return workflow_id


async def cancelled(gateway: httpx.AsyncClient, key: dict[str, str], workflow_id: str) -> None:
    answer = await gateway.post(f"/v1/workflows/{workflow_id}/cancel", headers=key)
    assert answer.status_code == 200, answer.text


async def ids(
    gateway: httpx.AsyncClient, key: dict[str, str], params: Sequence[tuple[str, str]]
) -> list[str]:
    answer = await gateway.get("/v1/workflows", params=Params(params), headers=key)
    assert answer.status_code == 200, answer.text
    return [w["workflow_id"] for w in answer.json()["workflows"]]


async def every_page(
    gateway: httpx.AsyncClient, key: dict[str, str], params: Sequence[tuple[str, str]]
) -> list[str]:
    listed: list[str] = []
    cursor: list[tuple[str, str]] = []
    for _ in range(50):
        answer = await gateway.get("/v1/workflows", params=Params([*params, *cursor]), headers=key)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        listed.extend(w["workflow_id"] for w in page["workflows"])
        if page["next_cursor"] is None:
            return listed
        cursor = [("cursor", page["next_cursor"])]
    raise AssertionError("the listing never ended")


# --- filters ---------------------------------------------------------------------------


async def test_filters_combine_per_tenant_and_page_correctly(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, keys: MemoryApiKeyStore
) -> None:
    acme, globex = await key_of(keys, "acme"), await key_of(keys, "globex")
    a1 = await started(gateway, acme, {"team": "x", "env": "prod"})
    a2 = await started(gateway, acme, {"team": "x"})
    a3 = await started(gateway, acme, {"team": "y", "env": "prod"})
    a4 = await started(gateway, acme, {"team": "x", "env": "prod"})
    g1 = await started(gateway, globex, {"team": "x", "env": "prod"})
    for workflow_id in (a2, a4):
        await cancelled(gateway, acme, workflow_id)
    await cancelled(gateway, globex, g1)

    assert await ids(gateway, acme, [("status", "cancelled")]) == [a4, a2]
    assert await ids(gateway, acme, [("status", "pending")]) == [a3, a1]
    assert await ids(gateway, acme, [("status", "pending"), ("status", "cancelled")]) == [
        a4,
        a3,
        a2,
        a1,
    ]
    both = [("metadata", "team:x"), ("metadata", "env:prod")]
    assert await ids(gateway, acme, both) == [a4, a1]
    assert await ids(gateway, acme, [*both, ("status", "cancelled")]) == [a4]
    assert await ids(gateway, globex, both) == [g1]

    created = {w: store.records[w].created_at for w in (a1, a2, a3, a4)}
    window = [
        ("created_after", created[a1].isoformat()),
        ("created_before", created[a4].isoformat().replace("+00:00", "Z")),
    ]
    assert await ids(gateway, acme, window) == [a3, a2]
    assert await every_page(gateway, acme, [("limit", "1"), ("metadata", "team:x")]) == [
        a4,
        a2,
        a1,
    ]


async def test_an_admin_key_filters_every_tenant_or_one(
    gateway: httpx.AsyncClient, keys: MemoryApiKeyStore
) -> None:
    admin = await key_of(keys, "ops", [Scope.ADMIN])
    acme = await started(gateway, await key_of(keys, "acme"), {"team": "x"})
    globex = await started(gateway, await key_of(keys, "globex"), {"team": "x"})
    await started(gateway, await key_of(keys, "globex"), {"team": "y"})
    assert await ids(gateway, admin, [("metadata", "team:x")]) == [globex, acme]
    assert await ids(gateway, admin, [("metadata", "team:x"), ("tenant", "acme")]) == [acme]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ([("status", "sleeping")], "status"),
        ([("created_after", "yesterday")], "created_after"),
        ([("created_after", "2026-11-30T10:00:00")], "created_after"),  # no zone
        ([("created_before", "2026-13-01T00:00:00Z")], "created_before"),
        ([("created_before", "1764496800")], "created_before"),
        (
            [
                ("created_after", "2026-11-30T10:00:00Z"),
                ("created_before", "2026-11-30T11:00:00+01:00"),  # the same instant
            ],
            "created_after",
        ),
        ([("metadata", "no-colon")], "metadata"),
        ([("metadata", ":empty-key")], "metadata"),
        ([("metadata", "k" * 65 + ":v")], "metadata"),
        ([("metadata", "k:" + "v" * 1025)], "metadata"),
        ([("metadata", f"k{i}:v") for i in range(9)], "metadata"),
        ([("limit", "0")], "limit"),
    ],
)
async def test_a_bad_filter_is_a_422_naming_its_parameter(
    gateway: httpx.AsyncClient,
    keys: MemoryApiKeyStore,
    params: Sequence[tuple[str, str]],
    parameter: str,
) -> None:
    answer = await gateway.get(
        "/v1/workflows", params=Params(params), headers=await key_of(keys, "acme")
    )
    assert answer.status_code == 422, answer.text
    errors = answer.json()["detail"]
    assert any(e["loc"][:2] == ["query", parameter] for e in errors), errors


async def test_time_bounds_accept_any_rfc3339_zone_and_fraction(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, keys: MemoryApiKeyStore
) -> None:
    acme = await key_of(keys, "acme")
    workflow_id = await started(gateway, acme)
    created = store.records[workflow_id].created_at
    before = (created + timedelta(hours=2, seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.123456789")
    after = (created - timedelta(seconds=1)).strftime("%Y-%m-%dt%H:%M:%Sz")
    params = [("created_before", before + "+02:00"), ("created_after", after)]
    assert await ids(gateway, acme, params) == [workflow_id]


# --- delete ----------------------------------------------------------------------------


async def test_an_ended_workflow_is_deleted_and_then_unknown(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, keys: MemoryApiKeyStore
) -> None:
    acme = await key_of(keys, "acme")
    kept = await started(gateway, acme)
    gone = await started(gateway, acme)
    await cancelled(gateway, acme, gone)

    deleted = await gateway.delete(f"/v1/workflows/{gone}", headers=acme)
    assert deleted.status_code == 204
    assert deleted.content == b""

    for method, suffix in [("GET", ""), ("GET", "/events"), ("GET", "/calls")]:
        answer = await gateway.request(method, f"/v1/workflows/{gone}{suffix}", headers=acme)
        assert answer.status_code == 404, (method, suffix)
    assert await ids(gateway, acme, []) == [kept]
    assert (await gateway.delete(f"/v1/workflows/{gone}", headers=acme)).status_code == 404
    assert gone not in store.records


async def test_a_workflow_that_runs_is_not_deleted(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, keys: MemoryApiKeyStore
) -> None:
    acme = await key_of(keys, "acme")
    running = await started(gateway, acme)
    refused = await gateway.delete(f"/v1/workflows/{running}", headers=acme)
    assert refused.status_code == 409
    assert "pending" in refused.json()["detail"]
    assert store.records[running].status is WorkflowStatus.PENDING
    assert (await gateway.get(f"/v1/workflows/{running}", headers=acme)).status_code == 200


async def test_deleting_needs_the_delete_scope_and_the_tenant(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, keys: MemoryApiKeyStore
) -> None:
    acme = await key_of(keys, "acme")
    theirs = await started(gateway, acme)
    await cancelled(gateway, acme, theirs)

    default = await key_of(keys, "acme", sorted(DEFAULT_SCOPES))
    without = await gateway.delete(f"/v1/workflows/{theirs}", headers=default)
    assert without.status_code == 403
    assert "'delete' scope" in without.json()["detail"]

    globex = await key_of(keys, "globex")
    foreign = await gateway.delete(f"/v1/workflows/{theirs}", headers=globex)
    unknown = await gateway.delete(f"/v1/workflows/{UNKNOWN}", headers=globex)
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["detail"] == unknown.json()["detail"].replace(UNKNOWN, theirs)
    assert theirs in store.records

    admin = await key_of(keys, "ops", [Scope.ADMIN])
    assert (await gateway.delete(f"/v1/workflows/{theirs}", headers=admin)).status_code == 204
    assert theirs not in store.records


async def test_a_retried_request_of_a_deleted_workflow_is_a_conflict(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, keys: MemoryApiKeyStore
) -> None:
    acme = {**await key_of(keys, "acme"), "Idempotency-Key": "order-9"}
    gone = await started(gateway, acme)
    await cancelled(gateway, acme, gone)
    assert (await gateway.delete(f"/v1/workflows/{gone}", headers=acme)).status_code == 204

    again = await gateway.post("/v1/workflows", json={"task": "Summarise"}, headers=acme)
    assert again.status_code == 409
    assert "deleted" in again.json()["detail"]
    assert gone not in store.records


async def test_the_api_description_documents_every_answer(gateway: httpx.AsyncClient) -> None:
    paths = (await gateway.get("/openapi.json")).json()["paths"]
    delete = paths["/v1/workflows/{workflow_id}"]["delete"]["responses"]
    assert {"204", "401", "403", "404", "409", "429", "503"} <= set(delete)
    listing = paths["/v1/workflows"]["get"]
    assert {"200", "401", "403", "422", "429", "503"} <= set(listing["responses"])
    invalid = listing["responses"]["422"]["content"]["application/json"]["schema"]
    assert invalid == {"$ref": "#/components/schemas/Invalid"}
    named = {p["name"] for p in listing["parameters"]}
    assert {"status", "created_after", "created_before", "metadata", "cursor"} <= named
    assert "409" in paths["/v1/workflows"]["post"]["responses"]
