"""Thousands of event streams on one gateway replica, over a bounded number of Redis connections."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from redis.asyncio import Redis

from tests.support.keys import TEST_TENANT, bearer
from tests.support.stack import RunningServices, start_services
from tributary_devstack.sse import SseParser
from tributary_devstack.stack import Stack
from tributary_shared.core.events import WorkflowRequested
from tributary_shared.runtime.state import RedisWorkflowStore

pytestmark = pytest.mark.integration

WORKFLOWS = 200
STREAMS_PER_WORKFLOW = 10  # 2,000 streams in all


@pytest.fixture(scope="module")
def lone_gateway(stack: Stack) -> Iterator[RunningServices]:
    # No workers: the workflows stay pending until the test cancels them.
    running = start_services(
        stack, llm_base_url="http://127.0.0.1:9/v1", label="streams", names=("gateway",)
    )
    yield running
    running.stop()


async def blocked_readers(redis: Redis) -> int:
    """Connections waiting in a blocking read now (``XREAD BLOCK``)."""
    clients = await redis.client_list()
    return sum(1 for client in clients if "b" in client["flags"] and client["cmd"] == "xread")


async def follow(
    http: httpx.AsyncClient, workflow_id: str, connected: asyncio.Semaphore
) -> list[str]:
    """The event types of one stream, until it ends; releases ``connected`` at the first."""
    parser, seen = SseParser(), []
    async with http.stream("GET", f"/v1/workflows/{workflow_id}/events") as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            parsed = parser.feed(line)
            if parsed is not None:
                seen.append(parsed.event)
                if len(seen) == 1:
                    connected.release()
    return seen


async def test_two_thousand_streams_share_a_few_redis_connections_and_all_end(
    stack: Stack, lone_gateway: RunningServices, api_key: str
) -> None:
    redis = Redis.from_url(f"redis://127.0.0.1:{stack.config.redis_port}/0")
    store = RedisWorkflowStore(redis, retention_s=600)
    workflow_ids = [f"wf_{uuid.uuid4().hex}" for _ in range(WORKFLOWS)]
    for workflow_id in workflow_ids:
        request = WorkflowRequested(workflow_id=workflow_id, tenant_id=TEST_TENANT, task="wait")
        await store.create_workflow(request, deadline_at=time.time() + 600)
        await store.mark_sent([request])  # nobody plans it: it waits for its cancel
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    async with httpx.AsyncClient(
        base_url=lone_gateway.gateway_url, limits=limits, timeout=120, headers=bearer(api_key)
    ) as http:
        assert (await http.get("/readyz")).status_code == 200
        connected = asyncio.Semaphore(0)
        streams = [
            asyncio.create_task(follow(http, workflow_id, connected))
            for workflow_id in workflow_ids
            for _ in range(STREAMS_PER_WORKFLOW)
        ]
        async with asyncio.timeout(120):
            for _ in streams:
                await connected.acquire()  # every stream has caught up and is live
        await asyncio.sleep(1)  # every stream waits for news now
        # One connection per stream used to wait in its own XREAD (and the 513th
        # stream found the pool empty); now one reader waits for all of them.
        assert await blocked_readers(redis) <= 2  # (another test gateway may have one)

        for workflow_id in workflow_ids:
            answer = await http.post(f"/v1/workflows/{workflow_id}/cancel")
            assert answer.status_code == 200, answer.text
        async with asyncio.timeout(120):
            results = await asyncio.gather(*streams)
    assert all(seen == ["workflow.requested", "workflow.cancelled"] for seen in results), {
        tuple(seen) for seen in results
    }
    await redis.aclose()
