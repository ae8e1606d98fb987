"""One contract suite for every port, run against its in-memory twin and its real adapter.

Each test takes ``backend``: ``memory`` runs in milliseconds in the unit suite;
``redis`` (and ``kafka`` for the publisher) runs the same test against the
real server that the devstack starts, marked ``integration``. A twin that
drifts from its adapter fails here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from tributary_devstack.stack import Stack
from tributary_shared.core.ports import (
    ApiKeyStore,
    BudgetLedger,
    CallbackStore,
    CallHistory,
    CancellationSignal,
    DeltaChannel,
    EffectLedger,
    WorkflowListing,
    WorkflowStore,
)
from tributary_shared.runtime.apikeys import RedisApiKeyStore
from tributary_shared.runtime.budget import RedisBudgetLedger
from tributary_shared.runtime.callbacks.store import RedisCallbackStore
from tributary_shared.runtime.calls import RedisCallHistory, RedisEffectLedger
from tributary_shared.runtime.cancellation import RedisCancellationSignal
from tributary_shared.runtime.deltas import RedisDeltaChannel
from tributary_shared.runtime.state import RedisWorkflowStore
from tributary_shared.twins import (
    MemoryApiKeyStore,
    MemoryBudgetLedger,
    MemoryCallbackStore,
    MemoryCallHistory,
    MemoryCancellationSignal,
    MemoryDeltaChannel,
    MemoryEffectLedger,
    MemoryWorkflowStore,
)

RETENTION_S = 600


@dataclass(frozen=True)
class Adapters:
    store: WorkflowStore
    budgets: BudgetLedger
    calls: CallHistory
    effects: EffectLedger
    cancellations: CancellationSignal
    keys: ApiKeyStore
    listing: WorkflowListing
    deltas: DeltaChannel
    callbacks: CallbackStore


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def adapters(backend: str, request: pytest.FixtureRequest) -> AsyncIterator[Adapters]:
    if backend == "memory":
        store = MemoryWorkflowStore()
        yield Adapters(
            store=store,
            budgets=MemoryBudgetLedger(store),
            calls=MemoryCallHistory(),
            effects=MemoryEffectLedger(),
            cancellations=MemoryCancellationSignal(),
            keys=MemoryApiKeyStore(),
            listing=store,
            deltas=MemoryDeltaChannel(),
            callbacks=MemoryCallbackStore(),
        )
        return
    stack: Stack = request.getfixturevalue("stack")
    url = f"redis://127.0.0.1:{stack.config.redis_port}/0"
    redis = Redis.from_url(url)
    listener = Redis.from_url(url, socket_timeout=None)
    redis_store = RedisWorkflowStore(redis, retention_s=RETENTION_S)
    deltas = RedisDeltaChannel(redis, listener_redis=listener)
    yield Adapters(
        store=redis_store,
        budgets=RedisBudgetLedger(redis, ttl_s=RETENTION_S),
        calls=RedisCallHistory(redis, ttl_s=RETENTION_S),
        effects=RedisEffectLedger(redis, ttl_s=RETENTION_S),
        cancellations=RedisCancellationSignal(redis, listener_redis=listener),
        keys=RedisApiKeyStore(redis),
        listing=redis_store,
        deltas=deltas,
        callbacks=RedisCallbackStore(redis, ttl_s=RETENTION_S),
    )
    await deltas.close()
    await listener.aclose()
    await redis.aclose()


@pytest.fixture
def store(adapters: Adapters) -> WorkflowStore:
    return adapters.store


@pytest.fixture
def listing(adapters: Adapters) -> WorkflowListing:
    return adapters.listing
