"""Stream tokens on the real gateway processes: a client without the key (a browser's
``EventSource``) follows a workflow to its end with ``?token=`` alone, on a replica other
than the one that issued the token, and the token is in no gateway log."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.client import GatewayClient
from tests.support.stack import RunningServices, free_port
from tributary_devstack.process import ServiceProcess
from tributary_devstack.sse import SseParser

pytestmark = pytest.mark.integration


@pytest.fixture
async def second_gateway(services: RunningServices) -> AsyncIterator[ServiceProcess]:
    """Another gateway replica on its own port, over the same Redis and Kafka (and so
    the same stream-token secret, kept there: the test stack configures none)."""
    proc: ServiceProcess = services.stack.start_service(
        "gateway", port=free_port(), env=services.env, instance="e2e-gateway-tokens"
    )
    try:
        await asyncio.to_thread(proc.wait_healthy, 60)
        yield proc
    finally:
        proc.terminate(grace=10)


async def test_a_stream_token_follows_a_workflow_to_its_end_on_another_replica(
    gateway: GatewayClient,
    services: RunningServices,
    second_gateway: ServiceProcess,
    marker: str,
) -> None:
    workflow_id = await gateway.start(f"What is 12 * 12? {marker}")
    issued = await gateway.http.post(f"/v1/workflows/{workflow_id}/stream-token")
    assert issued.status_code == 201, issued.text
    token, stream_url = issued.json()["token"], issued.json()["stream_url"]

    parser = SseParser()
    types: list[str] = []
    # What a browser's EventSource sends: the URL, no Authorization header.
    async with (
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{second_gateway.port}") as browser,
        asyncio.timeout(120),
        browser.stream("GET", stream_url, timeout=120) as response,
    ):
        assert "authorization" not in response.request.headers
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            parsed = parser.feed(line)
            if parsed is not None:
                types.append(parsed.event)
                assert json.loads(parsed.data)["workflow_id"] == workflow_id

        # The same token opens nothing else, on either replica.
        elsewhere = await browser.get(f"/v1/workflows/{workflow_id}", params={"token": token})
        assert elsewhere.status_code == 401

    assert types[0] == "workflow.requested"
    assert types[-1] == "workflow.completed"
    for proc in (services.process("gateway"), second_gateway):
        assert token not in proc.log_path.read_text()
