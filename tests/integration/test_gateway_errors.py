"""Bad input gets a clear 4xx; the gateway's health, readiness, metrics and docs answer."""

from __future__ import annotations

import pytest

from tests.support.client import GatewayClient

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


async def test_health_readiness_metrics_and_docs(gateway: GatewayClient) -> None:
    assert (await gateway.http.get("/healthz")).json() == {"status": "ok"}
    ready = await gateway.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "redis": "ok", "kafka": "ok"}
    assert "python_info" in (await gateway.http.get("/metrics/")).text
    spec = (await gateway.http.get("/openapi.json")).json()
    assert "/v1/workflows/{workflow_id}/events" in spec["paths"]
