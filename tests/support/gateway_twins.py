"""The real gateway app over the in-memory twins, for tests of its HTTP behaviour."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis

from tributary_gateway.app import app_over
from tributary_gateway.deps import GatewayState
from tributary_gateway.settings import GatewaySettings
from tributary_gateway.streams import StreamSlots
from tributary_shared.core.ports import ApiKeyStore, DeltaChannel, EventPublisher
from tributary_shared.runtime.control import WorkflowControl
from tributary_shared.runtime.fanout import LogFanout
from tributary_shared.runtime.kafka.publisher import make_broker
from tributary_shared.runtime.settings import WorkflowDefaults
from tributary_shared.twins import (
    MemoryBudgetLedger,
    MemoryCancellationSignal,
    MemoryLogReader,
    MemoryWorkflowStore,
)


@asynccontextmanager
async def gateway_over_twins(
    *,
    store: MemoryWorkflowStore,
    publisher: EventPublisher,
    keys: ApiKeyStore,
    settings: GatewaySettings | None = None,
    streams: StreamSlots | None = None,
    raise_app_exceptions: bool = True,
    deltas: DeltaChannel | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the gateway; it sends no API key unless told to (headers)."""
    async with app_over_twins(
        store=store,
        publisher=publisher,
        keys=keys,
        settings=settings,
        streams=streams,
        deltas=deltas,
    ) as app:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


@asynccontextmanager
async def app_over_twins(
    *,
    store: MemoryWorkflowStore,
    publisher: EventPublisher,
    keys: ApiKeyStore,
    settings: GatewaySettings | None = None,
    streams: StreamSlots | None = None,
    deltas: DeltaChannel | None = None,
) -> AsyncIterator[FastAPI]:
    """The gateway's ASGI app itself (for a test that serves it over a real socket)."""
    settings = settings or GatewaySettings()
    redis = Redis()  # never connected: only readiness would use it
    follower = LogFanout(MemoryLogReader(store), store, idle_s=settings.sse_ping_s)
    await follower.start()
    state = GatewayState(
        settings=settings,
        store=store,
        ledger=MemoryBudgetLedger(store),
        follower=follower,
        streams=streams or StreamSlots(10),
        publisher=publisher,
        broker=make_broker("127.0.0.1:9", client_id="gateway-test"),
        redis=redis,
        control=WorkflowControl(
            store=store, publisher=publisher, cancellations=MemoryCancellationSignal()
        ),
        defaults=WorkflowDefaults(),
        keys=keys,
        listing=store,
        deltas=deltas,
    )
    try:
        yield app_over(state)
    finally:
        await follower.close()
        await redis.aclose()
