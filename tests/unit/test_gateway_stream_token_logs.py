"""A stream token never reaches a log line: not the access log's URL, not the gateway's."""

from __future__ import annotations

import asyncio
import io
import logging
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from tests.support.gateway_twins import app_over_twins
from tests.support.keys import bearer, issue
from tributary_shared.core import machine
from tributary_shared.core.events import WorkflowCancelled, WorkflowRequested
from tributary_shared.runtime.logs import JsonFormatter
from tributary_shared.twins import MemoryApiKeyStore, MemoryPublisher, MemoryWorkflowStore


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Everything logged, as the gateway writes it (``configure_logging``'s formatter),
    with uvicorn's access log on: the one that writes each request's URL."""
    output = io.StringIO()
    handler = logging.StreamHandler(output)
    handler.setFormatter(JsonFormatter("gateway", "test"))
    root, access = logging.getLogger(), logging.getLogger("uvicorn.access")
    levels = root.level, access.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    access.setLevel(logging.INFO)
    try:
        yield output
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        access.setLevel(levels[1])


async def test_the_access_log_masks_a_stream_token(log_output: io.StringIO) -> None:
    store, keys = MemoryWorkflowStore(), MemoryApiKeyStore()
    workflow_id = f"wf_{uuid.uuid4().hex}"
    await store.create_workflow(
        WorkflowRequested(workflow_id=workflow_id, tenant_id="acme", task="t"),
        deadline_at=time.time() + 600,
    )
    await store.apply(machine.cancel(WorkflowCancelled(workflow_id=workflow_id)))
    key = await issue(keys, "acme")
    async with app_over_twins(store=store, publisher=MemoryPublisher(), keys=keys) as app:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=True)
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        try:
            for _ in range(1000):  # until it listens
                if server.started:
                    break
                await asyncio.sleep(0.01)
            port = server.servers[0].sockets[0].getsockname()[1]
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                issued = await client.post(
                    f"/v1/workflows/{workflow_id}/stream-token", headers=bearer(key)
                )
                token = issued.json()["token"]
                streamed = await client.get(issued.json()["stream_url"])
                refused = await client.get(f"/v1/workflows/{workflow_id}", params={"token": token})
        finally:
            server.should_exit = True
            await asyncio.wait_for(serving, timeout=10)

    assert (streamed.status_code, refused.status_code) == (200, 401)
    logged = log_output.getvalue()
    assert f"/v1/workflows/{workflow_id}/events?token=" in logged  # the access log ran
    assert token not in logged
    assert token[20:60] not in logged  # nor a piece of it
