"""The gateway's limits, as a client meets them, over the in-memory twins.

A body over the configured size is refused with ``413`` before it is parsed; every
option and ``metadata`` has a bound the OpenAPI schema documents, and a request
past one gets ``422`` naming it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tributary_gateway.app import app_over
from tributary_gateway.deps import GatewayState
from tributary_gateway.settings import GatewaySettings
from tributary_gateway.streams import StreamSlots
from tributary_shared.core.events import (
    METADATA_MAX_BYTES,
    METADATA_MAX_KEYS,
    TOKEN_BUDGET_BOUND,
)
from tributary_shared.runtime.control import WorkflowControl
from tributary_shared.runtime.fanout import LogFanout
from tributary_shared.runtime.kafka.publisher import make_broker
from tributary_shared.runtime.settings import WorkflowDefaults
from tributary_shared.twins import (
    MemoryBudgetLedger,
    MemoryCancellationSignal,
    MemoryLogReader,
    MemoryPublisher,
    MemoryWorkflowStore,
)

MAX_BODY = 4096


@pytest.fixture
def store() -> MemoryWorkflowStore:
    return MemoryWorkflowStore()


def gateway_state(store: MemoryWorkflowStore, **settings: Any) -> GatewayState:
    publisher = MemoryPublisher()
    return GatewayState(
        settings=GatewaySettings(**settings),
        store=store,
        ledger=MemoryBudgetLedger(store),
        follower=LogFanout(MemoryLogReader(store), store, idle_s=1.0),
        streams=StreamSlots(10),
        publisher=publisher,
        broker=make_broker("127.0.0.1:9", client_id="gateway-test"),
        redis=Redis(),  # never connected
        control=WorkflowControl(
            store=store, publisher=publisher, cancellations=MemoryCancellationSignal()
        ),
        defaults=WorkflowDefaults(),
    )


@pytest.fixture
async def gateway(store: MemoryWorkflowStore) -> AsyncIterator[httpx.AsyncClient]:
    state = gateway_state(store, max_body_bytes=MAX_BODY)
    transport = httpx.ASGITransport(app=app_over(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client
    await state.redis.aclose()


def start(options: dict[str, Any]) -> dict[str, Any]:
    return {"task": "Summarise the quarterly report", "options": options}


async def test_a_body_over_the_limit_is_refused_with_413_and_nothing_starts(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore
) -> None:
    padded = start({"metadata": {"note": "x" * MAX_BODY}})
    answer = await gateway.post("/v1/workflows", json=padded)
    assert answer.status_code == 413
    assert str(MAX_BODY) in answer.json()["detail"]
    assert store.records == {}


async def test_a_chunked_body_over_the_limit_is_refused_with_413(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"task": "Summarise", "options": {"metadata": {"note": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}}}'

    answer = await gateway.post(
        "/v1/workflows", content=chunks(), headers={"content-type": "application/json"}
    )
    assert answer.status_code == 413
    assert store.records == {}


async def test_a_chunked_body_within_the_limit_is_accepted(gateway: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"task": "Summarise '
        yield b'the report"}'

    answer = await gateway.post(
        "/v1/workflows", content=chunks(), headers={"content-type": "application/json"}
    )
    assert answer.status_code == 202


async def test_a_body_over_the_limit_is_refused_before_it_is_parsed(
    gateway: httpx.AsyncClient,
) -> None:
    # Not JSON at all: a parser would answer 422; the size check answers first.
    answer = await gateway.post(
        "/v1/workflows",
        content=b"{" * (MAX_BODY + 1),
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 413


def _rejected_field(answer: httpx.Response) -> tuple[str, ...]:
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["detail"]
    return tuple(str(part) for part in error["loc"])


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"token_budget": 10**15}, "token_budget"),
        ({"cost_budget_usd": 10**9}, "cost_budget_usd"),
        ({"deadline_s": 10**9}, "deadline_s"),
        ({"max_steps": 10_000}, "max_steps"),
        ({"metadata": {f"k{i}": "v" for i in range(METADATA_MAX_KEYS + 1)}}, "metadata"),
        ({"metadata": {"k" * 65: "v"}}, "metadata"),
        ({"metadata": {"note": "v" * 1025}}, "metadata"),
    ],
)
async def test_each_option_past_its_bound_answers_422_naming_it(
    options: dict[str, Any], field: str, store: MemoryWorkflowStore
) -> None:
    state = gateway_state(store)  # the default body limit: only the bound refuses these
    transport = httpx.ASGITransport(app=app_over(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        answer = await client.post("/v1/workflows", json=start(options))
    assert field in _rejected_field(answer)
    assert store.records == {}
    await state.redis.aclose()


async def test_metadata_past_its_total_size_answers_422(store: MemoryWorkflowStore) -> None:
    # Every key and value within its own bound; together more than the total.
    metadata = {f"k{i}": "v" * 1000 for i in range(METADATA_MAX_BYTES // 1000 + 1)}
    state = gateway_state(store)
    transport = httpx.ASGITransport(app=app_over(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        answer = await client.post("/v1/workflows", json=start({"metadata": metadata}))
    assert "metadata" in _rejected_field(answer)
    assert str(METADATA_MAX_BYTES) in answer.json()["detail"][0]["msg"]
    await state.redis.aclose()


async def test_options_at_their_bounds_are_accepted(gateway: httpx.AsyncClient) -> None:
    answer = await gateway.post("/v1/workflows", json=start({"token_budget": TOKEN_BUDGET_BOUND}))
    assert answer.status_code == 202


def test_the_openapi_schema_documents_the_bounds(store: MemoryWorkflowStore) -> None:
    schemas = app_over(gateway_state(store)).openapi()["components"]["schemas"]
    options = schemas["WorkflowOptions"]["properties"]
    assert options["token_budget"]["anyOf"][0]["maximum"] == TOKEN_BUDGET_BOUND
    assert options["metadata"]["maxProperties"] == METADATA_MAX_KEYS
    assert options["metadata"]["propertyNames"]["maxLength"] == 64
    assert options["metadata"]["additionalProperties"]["maxLength"] == 1024
    for bounded in ("cost_budget_usd", "deadline_s", "max_steps"):
        assert "maximum" in options[bounded]["anyOf"][0], bounded
