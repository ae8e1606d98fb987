"""The gateway's quotas on the live stack: a real gateway process over real Redis and Kafka.

A tenant at its running-workflow ceiling gets ``429`` with ``Retry-After`` until
one of its workflows ends (a cancel, written by the store's transition), and a
caller past its request rate gets ``429`` with ``Retry-After``; both counted in
Redis, where every replica would see them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from redis.asyncio import Redis

from tests.support.keys import bearer, issue
from tests.support.stack import RunningServices, start_services
from tributary_devstack.stack import Stack
from tributary_scripted_llm.server import ScriptedLLMServer
from tributary_shared.runtime.apikeys import RedisApiKeyStore

pytestmark = pytest.mark.integration

RUNNING_CEILING = 2
QUOTAS = {
    "TRIBUTARY_TENANT_MAX_RUNNING_WORKFLOWS": str(RUNNING_CEILING),
    # Enough for the running-ceiling part at once; slow enough that a handful of
    # quick requests then exhausts it, however slowly the machine runs.
    "TRIBUTARY_GATEWAY_RATE_LIMIT_BURST": "8",
    "TRIBUTARY_GATEWAY_RATE_LIMIT_PER_S": "0.05",
}


@pytest.fixture(scope="module")
def quota_gateway(stack: Stack) -> Iterator[RunningServices]:
    # No workers: the workflows stay pending (running, for the count) until cancelled.
    running = start_services(
        stack,
        llm_base_url="http://127.0.0.1:9/v1",
        label="quotas",
        names=("gateway",),
        extra_env=QUOTAS,
    )
    yield running
    running.stop()


async def test_running_ceiling_and_request_rate_answer_429_with_retry_after(
    stack: Stack, quota_gateway: RunningServices, llm: ScriptedLLMServer
) -> None:
    # Workers of other tests may be up and would finish these workflows: their
    # planning waits at the model until the test cancels them.
    marker = f"#quotas-{uuid.uuid4().hex[:8]}"
    hang = llm.admin.add_rule(contains=marker, responses=[{"hang": True}])
    redis = Redis.from_url(f"redis://127.0.0.1:{stack.config.redis_port}/0")
    try:
        await _ceiling_then_rate(quota_gateway, RedisApiKeyStore(redis), marker)
    finally:
        llm.admin.delete_rule(hang)
        await redis.aclose()


async def _ceiling_then_rate(gateway: RunningServices, keys: RedisApiKeyStore, marker: str) -> None:
    # A tenant of its own (nothing of earlier tests counts for it), a key with a fresh pace.
    tenant = f"quotas-{uuid.uuid4().hex[:8]}"
    key = await issue(keys, tenant)
    body = {"task": f"Wait to be cancelled {marker}"}
    async with httpx.AsyncClient(
        base_url=gateway.gateway_url, timeout=60, headers=bearer(key)
    ) as http:
        started = [await http.post("/v1/workflows", json=body) for _ in range(RUNNING_CEILING)]
        assert [a.status_code for a in started] == [202] * RUNNING_CEILING
        refused = await http.post("/v1/workflows", json=body)
        assert refused.status_code == 429, refused.text
        assert "max_running_workflows" in refused.json()["detail"]
        assert int(refused.headers["Retry-After"]) >= 1

        first = started[0].json()["workflow_id"]
        assert (await http.post(f"/v1/workflows/{first}/cancel")).status_code == 200
        again = await http.post("/v1/workflows", json=body)
        assert again.status_code == 202, again.text  # the ended workflow freed its slot

        # 5 of the burst of 8 spent; a request every 20 s comes back. Reads until refused.
        answers = []
        for _ in range(10):
            answers.append(await http.get(f"/v1/workflows/{first}"))
            if answers[-1].status_code == 429:
                break
        assert answers[-1].status_code == 429, [a.status_code for a in answers]
        assert {a.status_code for a in answers[:-1]} == {200}
        assert len(answers) <= 5
        assert 1 <= int(answers[-1].headers["Retry-After"]) <= 20
        assert (await http.get("/healthz")).status_code == 200  # probes are never paced

    # End what this test started, so no later test's planner takes it up (with a
    # second key of the tenant: the first one is out of pace).
    async with httpx.AsyncClient(
        base_url=gateway.gateway_url, timeout=60, headers=bearer(await issue(keys, tenant))
    ) as http:
        for workflow_id in (started[1].json()["workflow_id"], again.json()["workflow_id"]):
            assert (await http.post(f"/v1/workflows/{workflow_id}/cancel")).status_code == 200
