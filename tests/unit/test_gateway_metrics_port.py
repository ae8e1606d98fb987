"""The public app serves ``/v1`` and the health checks only; metrics live on their own port."""

from __future__ import annotations

import httpx
from prometheus_client import Counter
from starlette.routing import Mount

from tests.unit.test_gateway_limits import gateway_state
from tributary_gateway.app import app_over, metrics_app
from tributary_shared.twins import MemoryWorkflowStore

HEALTH_CHECKS = {"/healthz", "/readyz"}


def test_the_public_app_serves_only_v1_the_health_checks_and_the_inspector() -> None:
    app = app_over(gateway_state(MemoryWorkflowStore()))
    documented = set(app.openapi()["paths"])
    assert {path for path in documented if not path.startswith("/v1/")} == HEALTH_CHECKS
    # The web inspector's static files; no /metrics.
    assert [route.path for route in app.routes if isinstance(route, Mount)] == ["/ui"]


async def test_the_public_port_answers_404_for_metrics() -> None:
    app = app_over(gateway_state(MemoryWorkflowStore()))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as client:
        assert (await client.get("/metrics")).status_code == 404
        assert (await client.get("/metrics/")).status_code == 404


async def test_the_metrics_port_serves_the_process_metrics_and_its_own_probe() -> None:
    Counter("tributary_test_metrics_port_probe", "A counter only this test makes").inc()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=metrics_app()), base_url="http://metrics"
    ) as client:
        scraped = await client.get("/metrics/")
        assert scraped.status_code == 200
        assert "tributary_test_metrics_port_probe_total 1.0" in scraped.text
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/v1/workflows")).status_code == 404
