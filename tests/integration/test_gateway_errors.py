"""Bad input gets a clear 4xx; the gateway's health, readiness, metrics and docs answer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tests.support.client import GatewayClient
from tests.support.keys import TEST_TENANT
from tests.support.stack import RunningServices
from tributary_devstack.stack import Stack
from tributary_shared.core.events import WorkflowRequested
from tributary_shared.core.keys import idempotency_key
from tributary_shared.runtime.control import deadline_at
from tributary_shared.runtime.settings import WorkflowDefaults
from tributary_shared.runtime.state import RedisWorkflowStore
from tributary_shared.runtime.state.store import request_fingerprint

pytestmark = pytest.mark.integration

UNKNOWN = "wf_" + "0" * 32


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({}, "task"),
        ({"task": ""}, "task"),
        ({"task": 42}, "task"),
        ({"task": "ok", "colour": "red"}, "colour"),
        ({"task": "ok", "options": {"max_steps": 0}}, "max_steps"),
    ],
    ids=["missing-task", "empty-task", "wrong-type", "unknown-field", "bad-option"],
)
async def test_malformed_requests_get_422_naming_the_problem(
    gateway: GatewayClient, body: dict[str, object], complaint: str
) -> None:
    response = await gateway.http.post("/v1/workflows", json=body)
    assert response.status_code == 422
    assert complaint in response.text


async def test_a_blank_task_is_refused(gateway: GatewayClient) -> None:
    response = await gateway.http.post("/v1/workflows", json={"task": "   "})
    assert response.status_code == 422
    assert response.json()["detail"] == "task must not be blank"


async def test_a_body_that_is_not_json_gets_422(gateway: GatewayClient) -> None:
    response = await gateway.http.post(
        "/v1/workflows", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


@pytest.mark.parametrize("workflow_id", [UNKNOWN, "nope", "wf_../../etc"])
async def test_unknown_workflows_get_404(gateway: GatewayClient, workflow_id: str) -> None:
    for path in (f"/v1/workflows/{workflow_id}", f"/v1/workflows/{workflow_id}/events"):
        response = await gateway.http.get(path)
        assert response.status_code == 404, path
        assert "not found" in response.json()["detail"]


async def test_a_malformed_last_event_id_gets_400(gateway: GatewayClient) -> None:
    workflow_id = await gateway.start("Say hello")
    response = await gateway.http.get(
        f"/v1/workflows/{workflow_id}/events", headers={"Last-Event-ID": "yesterday"}
    )
    assert response.status_code == 400
    await gateway.follow(workflow_id)


async def test_health_readiness_metrics_and_docs(
    gateway: GatewayClient, services: RunningServices
) -> None:
    assert (await gateway.http.get("/healthz")).json() == {"status": "ok"}
    ready = await gateway.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "redis": "ok", "kafka": "ok"}
    # Metrics on their own port; the public one has none.
    assert (await gateway.http.get("/metrics/")).status_code == 404
    scraped = await gateway.http.get(services.gateway_metrics_url + "/")
    assert "python_info" in scraped.text
    spec = (await gateway.http.get("/openapi.json")).json()
    assert "/v1/workflows/{workflow_id}/events" in spec["paths"]


@pytest.fixture
async def redis(stack: Stack) -> AsyncIterator[Redis]:
    client = Redis.from_url(f"redis://127.0.0.1:{stack.config.redis_port}/0")
    yield client
    await client.aclose()


async def test_a_key_claimed_by_a_gateway_that_died_gets_a_workflow_that_runs(
    gateway: GatewayClient, redis: Redis, marker: str
) -> None:
    # What a gateway that died right after claiming the key leaves: the claim alone.
    task, key = f"Say hello {marker}", f"claimed-{marker}"
    claimed = f"wf_{uuid.uuid4().hex}"
    fingerprint = request_fingerprint(
        WorkflowRequested(workflow_id=claimed, tenant_id=TEST_TENANT, task=task)
    )
    await redis.set(idempotency_key(TEST_TENANT, key), f"{claimed} {fingerprint}", ex=600)

    retried = await gateway.http.post(
        "/v1/workflows", json={"task": task}, headers={"Idempotency-Key": key}
    )
    assert retried.status_code == 202, retried.text
    assert retried.json()["workflow_id"] == claimed
    events = await gateway.follow(claimed)
    assert events[-1].type == "workflow.completed"


async def test_a_workflow_written_by_a_gateway_that_died_is_sent_by_the_retry(
    gateway: GatewayClient, redis: Redis, marker: str
) -> None:
    # What a gateway that died between the Redis write and the publish leaves.
    task, key = f"Say hello {marker}", f"unsent-{marker}"
    first = WorkflowRequested(
        workflow_id=f"wf_{uuid.uuid4().hex}", tenant_id=TEST_TENANT, task=task
    )
    store = RedisWorkflowStore(redis, retention_s=600)
    await store.create_workflow(
        first, deadline_at=deadline_at(first, WorkflowDefaults()), idempotency_key_value=key
    )

    retried = await gateway.http.post(
        "/v1/workflows", json={"task": task}, headers={"Idempotency-Key": key}
    )
    assert retried.status_code == 202, retried.text
    assert retried.json()["workflow_id"] == first.workflow_id
    events = await gateway.follow(first.workflow_id)
    assert events[0].data["event_id"] == first.event_id
    assert events[-1].type == "workflow.completed"
