"""Listing and deleting workflows on the live stack: real gateway, workers, Redis and Kafka.

Two tenants each start workflows with metadata; the scripted model holds some
in planning and lets the others complete. Each tenant lists exactly its own,
filtered and page by page; deleting a completed one removes every Redis key
it had (its tombstone aside) and its index entries, while a running one is kept.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.support.keys import bearer, issue
from tests.support.stack import RunningServices
from tributary_devstack.stack import Stack
from tributary_scripted_llm import ScriptedLLMAdmin
from tributary_shared.core.access import Scope
from tributary_shared.core.keys import (
    DEADLINES_KEY,
    OUTBOX_KEY,
    WORKFLOWS_INDEX_KEY,
    running_workflows_key,
    tenant_workflows_key,
)
from tributary_shared.runtime.apikeys import RedisApiKeyStore

pytestmark = pytest.mark.integration

SCOPES = [Scope.START, Scope.READ, Scope.CANCEL, Scope.DELETE]
Params = list[tuple[str, str | int | float | bool | None]]


async def test_listing_filters_pages_and_deletes_per_tenant(
    stack: Stack, services: RunningServices, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    llm_admin.add_rule(contains=f"hold {marker}", responses=[{"hang": True}])
    redis = Redis.from_url(stack.config.redis_url)
    tenants = [f"list-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    clients = {
        t: httpx.AsyncClient(
            base_url=services.gateway_url,
            timeout=30,
            headers=bearer(await issue(RedisApiKeyStore(redis), t, scopes=SCOPES)),
        )
        for t in tenants
    }
    held: dict[str, list[str]] = {t: [] for t in tenants}
    try:
        started = {t: await _start_mix(clients[t], marker, held[t]) for t in tenants}
        for tenant, http in clients.items():
            await _lists_its_own(http, started[tenant], held[tenant])
        first, second = tenants
        await _deletes(redis, clients[first], first, started[first], held[first])
        # The other tenant cannot delete, nor see, the first one's workflows.
        foreign = await clients[second].delete(f"/v1/workflows/{held[first][0]}")
        assert foreign.status_code == 404
    finally:
        for tenant, http in clients.items():
            for workflow_id in held[tenant]:
                await http.post(f"/v1/workflows/{workflow_id}/cancel")
            await http.aclose()
        await redis.aclose()


async def _start_mix(http: httpx.AsyncClient, marker: str, held: list[str]) -> list[str]:
    """Five workflows, oldest first: quick, held, quick, held, quick; the quick ones end."""
    started: list[str] = []
    for n in range(5):
        quick = n % 2 == 0
        task = f"Summarise item {n} {marker}" if quick else f"Please hold {marker}"
        metadata = {"kind": "quick" if quick else "held", "n": str(n)}
        answer = await http.post(
            "/v1/workflows", json={"task": task, "options": {"metadata": metadata}}
        )
        assert answer.status_code == 202, answer.text
        started.append(answer.json()["workflow_id"])
        if not quick:
            held.append(started[-1])
    for workflow_id in started[::2]:
        await _wait_for(http, workflow_id, "completed")
    for workflow_id in held:
        await _wait_for(http, workflow_id, "planning")
    return started


async def _lists_its_own(http: httpx.AsyncClient, started: list[str], held: list[str]) -> None:
    newest_first = started[::-1]
    quick = [w for w in newest_first if w not in held]
    assert await _all(http, []) == newest_first
    assert await _all(http, [("limit", 2)]) == newest_first
    assert await _all(http, [("status", "completed")]) == quick
    assert await _all(http, [("status", "planning"), ("status", "running")]) == held[::-1]
    assert await _all(http, [("metadata", "kind:quick"), ("limit", 1)]) == quick
    assert await _all(http, [("metadata", "kind:held"), ("metadata", "n:3")]) == [started[3]]
    assert await _all(http, [("metadata", "kind:held"), ("status", "completed")]) == []
    second = (await _get(http, started[1]))["created_at"]
    fourth = (await _get(http, started[3]))["created_at"]
    window = [("created_after", second), ("created_before", fourth)]
    assert await _all(http, window) == [started[2]]
    assert await _all(http, [("created_after", second), ("limit", 1)]) == newest_first[:3]
    bad = await http.get("/v1/workflows", params=[("created_after", fourth), *window[1:]])
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "created_after"]


async def _deletes(
    redis: Redis, http: httpx.AsyncClient, tenant: str, started: list[str], held: list[str]
) -> None:
    done = started[0]
    record = await _get(http, done)
    assert await _keys_of(redis, done)  # its record, log, budget...
    refused = await http.delete(f"/v1/workflows/{held[0]}")
    assert refused.status_code == 409, refused.text
    assert (await _get(http, held[0]))["status"] == "planning"

    assert (await http.delete(f"/v1/workflows/{done}")).status_code == 204

    assert (await http.get(f"/v1/workflows/{done}")).status_code == 404
    assert (await http.delete(f"/v1/workflows/{done}")).status_code == 404
    assert done not in await _all(http, [])
    # What is left of it in Redis: its tombstone, which expires, and nothing else.
    left = await _keys_of(redis, done)
    assert left == [f"tributary:v1:wf:{{{done}}}"], left
    assert list((await redis.hgetall(left[0])).keys()) == [b"purged_at"]
    assert await redis.ttl(left[0]) > 0
    for index in (WORKFLOWS_INDEX_KEY, tenant_workflows_key(tenant)):
        members: list[Any] = await redis.zrange(index, 0, -1)
        assert not [m for m in members if m.endswith(done.encode())], index
    assert await redis.zscore(DEADLINES_KEY, done) is None
    assert await redis.zscore(running_workflows_key(tenant), done) is None
    notes = [m.decode() async for m, _ in redis.zscan_iter(OUTBOX_KEY, count=1000)]
    assert not [n for n in notes if done in n]
    assert record["tenant_id"] == tenant


async def _keys_of(redis: Redis, workflow_id: str) -> list[str]:
    return sorted([k.decode() async for k in redis.scan_iter(match=f"*{workflow_id}*")])


async def _all(http: httpx.AsyncClient, params: Sequence[tuple[str, str | int]]) -> list[str]:
    listed: list[str] = []
    cursor: Params = []
    for _ in range(50):
        answer = await http.get("/v1/workflows", params=Params([*params, *cursor]))
        assert answer.status_code == 200, answer.text
        page = answer.json()
        listed.extend(w["workflow_id"] for w in page["workflows"])
        if page["next_cursor"] is None:
            return listed
        cursor = [("cursor", page["next_cursor"])]
    raise AssertionError("the listing never ended")


async def _get(http: httpx.AsyncClient, workflow_id: str) -> dict[str, Any]:
    answer = await http.get(f"/v1/workflows/{workflow_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def _wait_for(http: httpx.AsyncClient, workflow_id: str, status: str) -> None:
    for _ in range(1200):  # a minute: the machine may be loaded
        if (await _get(http, workflow_id))["status"] == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"workflow {workflow_id} never reached {status}")
