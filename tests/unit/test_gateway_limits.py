"""The gateway's limits and quotas, as a client meets them, over the in-memory twins.

A body over the configured size is refused with ``413`` before it is parsed; every
option and ``metadata`` has a bound the OpenAPI schema documents, and a request
past one gets ``422`` naming it; so does one past its tenant's ceiling. A tenant
at its running-workflow ceiling, a caller past its request rate or holding its
most event streams gets ``429`` with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.support.keys import bearer
from tributary_gateway.app import app_over
from tributary_gateway.deps import GatewayState
from tributary_gateway.settings import GatewaySettings, TenantLimitSettings
from tributary_gateway.streams import StreamSlots
from tributary_gateway.tenant_limits import TenantCeilings
from tributary_shared.core.access import DEFAULT_SCOPES, issue_key
from tributary_shared.core.events import (
    METADATA_MAX_BYTES,
    METADATA_MAX_KEYS,
    TOKEN_BUDGET_BOUND,
    utc_now,
)
from tributary_shared.runtime.control import WorkflowControl
from tributary_shared.runtime.fanout import LogFanout
from tributary_shared.runtime.kafka.publisher import make_broker
from tributary_shared.runtime.settings import BudgetSettings, WorkflowDefaults
from tributary_shared.twins import (
    MemoryApiKeyStore,
    MemoryBudgetLedger,
    MemoryCancellationSignal,
    MemoryLogReader,
    MemoryPublisher,
    MemoryRateLimiter,
    MemoryRunningWorkflows,
    MemoryWorkflowStore,
)

MAX_BODY = 4096
# The caller's API key, of tenant ``default`` (whose ceilings these tests set).
ISSUED = issue_key(tenant_id="default", scopes=DEFAULT_SCOPES, created_at=utc_now(), label="t")
AUTHORIZED = bearer(ISSUED.key)


@pytest.fixture
def store() -> MemoryWorkflowStore:
    return MemoryWorkflowStore()


def keys_with_the_callers() -> MemoryApiKeyStore:
    keys = MemoryApiKeyStore()
    keys.records[ISSUED.record.key_id] = ISSUED.record
    return keys


def gateway_state(
    store: MemoryWorkflowStore,
    *,
    quotas: dict[str, Any] | None = None,
    tenant_limits: TenantLimitSettings | None = None,
    **settings: Any,
) -> GatewayState:
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
        keys=keys_with_the_callers(),
        listing=store,
        budgets=BudgetSettings(),
        tenant_limits=tenant_limits or TenantLimitSettings(),
        **(quotas or {}),
    )


@pytest.fixture
async def gateway(store: MemoryWorkflowStore) -> AsyncIterator[httpx.AsyncClient]:
    state = gateway_state(store, max_body_bytes=MAX_BODY)
    transport = httpx.ASGITransport(app=app_over(state))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://gateway", headers=AUTHORIZED
    ) as client:
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
    async with httpx.AsyncClient(
        transport=transport, base_url="http://gateway", headers=AUTHORIZED
    ) as client:
        answer = await client.post("/v1/workflows", json=start(options))
    assert field in _rejected_field(answer)
    assert store.records == {}
    await state.redis.aclose()


async def test_metadata_past_its_total_size_answers_422(store: MemoryWorkflowStore) -> None:
    # Every key and value within its own bound; together more than the total.
    metadata = {f"k{i}": "v" * 1000 for i in range(METADATA_MAX_BYTES // 1000 + 1)}
    state = gateway_state(store)
    transport = httpx.ASGITransport(app=app_over(state))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://gateway", headers=AUTHORIZED
    ) as client:
        answer = await client.post("/v1/workflows", json=start({"metadata": metadata}))
    assert "metadata" in _rejected_field(answer)
    assert str(METADATA_MAX_BYTES) in answer.json()["detail"][0]["msg"]
    await state.redis.aclose()


async def test_options_at_their_bounds_are_accepted(store: MemoryWorkflowStore) -> None:
    no_ceiling = TenantLimitSettings(max_token_budget=None)
    async with client_of(gateway_state(store, tenant_limits=no_ceiling)) as client:
        answer = await client.post(
            "/v1/workflows", json=start({"token_budget": TOKEN_BUDGET_BOUND})
        )
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


@asynccontextmanager
async def client_of(state: GatewayState) -> AsyncIterator[httpx.AsyncClient]:
    await state.follower.start()  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app_over(state))
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gateway", headers=AUTHORIZED
        ) as client:
            yield client
    finally:
        await state.follower.close()  # type: ignore[attr-defined]
        await state.redis.aclose()


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 - state of the app, no event to wait on
            await asyncio.sleep(0.01)


CEILINGS = TenantLimitSettings(
    max_token_budget=50_000,
    max_cost_budget_usd=2.0,
    max_deadline_s=600,
    max_steps=5,
    max_running_workflows=None,
    limits={"default": TenantCeilings(max_steps=3)},  # over the defaults, for this tenant
)


@pytest.mark.parametrize(
    ("options", "ceiling"),
    [
        ({"token_budget": 50_001}, "max_token_budget"),
        ({"cost_budget_usd": 2.5}, "max_cost_budget_usd"),
        ({"deadline_s": 601}, "max_deadline_s"),
        ({"max_steps": 4}, "max_steps (3)"),  # the tenant's own ceiling, not the default 5
    ],
)
async def test_a_request_above_its_tenants_ceiling_answers_422_naming_it(
    options: dict[str, Any], ceiling: str, store: MemoryWorkflowStore
) -> None:
    async with client_of(gateway_state(store, tenant_limits=CEILINGS)) as client:
        answer = await client.post("/v1/workflows", json=start(options))
    assert answer.status_code == 422
    assert ceiling in answer.json()["detail"]
    assert store.records == {}


async def test_options_left_out_get_the_ceiling_where_the_default_would_pass_it(
    store: MemoryWorkflowStore,
) -> None:
    async with client_of(gateway_state(store, tenant_limits=CEILINGS)) as client:
        answer = await client.post("/v1/workflows", json=start({"token_budget": 50_000}))
    assert answer.status_code == 202
    [record] = store.records.values()
    assert record.options.token_budget == 50_000
    assert record.options.cost_budget_usd == 2.0  # the default is no cost budget at all
    assert record.options.max_steps == 3
    assert record.options.deadline_s == 600  # the default, 3600 s, would pass it


async def test_a_tenant_at_its_running_ceiling_gets_429_until_one_ends(
    store: MemoryWorkflowStore,
) -> None:
    limits = TenantLimitSettings(max_running_workflows=2)
    running = MemoryRunningWorkflows(store)
    state = gateway_state(store, tenant_limits=limits, quotas={"running": running})
    async with client_of(state) as client:
        first, second = [await client.post("/v1/workflows", json=start({})) for _ in range(2)]
        assert (first.status_code, second.status_code) == (202, 202)
        refused = await client.post("/v1/workflows", json=start({}))
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert "max_running_workflows (2)" in refused.json()["detail"]
        assert len(store.records) == 2  # the refused one was not created

        cancelled = await client.post(f"/v1/workflows/{first.json()['workflow_id']}/cancel")
        assert cancelled.status_code == 200
        assert (await client.post("/v1/workflows", json=start({}))).status_code == 202


async def test_a_retried_request_is_answered_without_taking_another_slot(
    store: MemoryWorkflowStore,
) -> None:
    limits = TenantLimitSettings(max_running_workflows=2)
    running = MemoryRunningWorkflows(store)
    state = gateway_state(store, tenant_limits=limits, quotas={"running": running})
    keyed = {"Idempotency-Key": "order-7"}
    async with client_of(state) as client:
        for _ in range(3):
            answer = await client.post("/v1/workflows", json=start({}), headers=keyed)
            assert answer.status_code == 202
        assert await running.running("default") == 1
        assert (await client.post("/v1/workflows", json=start({}))).status_code == 202


async def test_a_caller_past_its_rate_gets_429_with_retry_after(
    store: MemoryWorkflowStore,
) -> None:
    now = [1000.0]
    rates = MemoryRateLimiter(clock=lambda: now[0])
    state = gateway_state(store, quotas={"rates": rates}, rate_limit_per_s=0.5, rate_limit_burst=3)
    async with client_of(state) as client:
        answers = [await client.get(f"/v1/workflows/wf_{'0' * 32}") for _ in range(3)]
        assert [a.status_code for a in answers] == [404, 404, 404]  # the burst
        refused = await client.get(f"/v1/workflows/wf_{'0' * 32}")
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "2"  # one request per 2 s
        creating = await client.post("/v1/workflows", json=start({}))
        assert creating.status_code == 429  # every /v1 route is paced
        assert store.records == {}
        now[0] += 2.0
        assert (await client.post("/v1/workflows", json=start({}))).status_code == 202
        assert (await client.get("/healthz")).status_code == 200  # probes are not paced


async def test_a_caller_holding_its_most_event_streams_gets_429(
    store: MemoryWorkflowStore,
) -> None:
    state = gateway_state(store, max_streams_per_key=1)
    async with client_of(state) as client:
        workflow_id = (await client.post("/v1/workflows", json=start({}))).json()["workflow_id"]
        path = f"/v1/workflows/{workflow_id}/events"
        held = asyncio.create_task(client.get(path))
        await _until(lambda: bool(state.key_streams.open))  # the first stream is served
        refused = await asyncio.wait_for(client.get(path), timeout=5)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert "event streams" in refused.json()["detail"]
        assert state.streams.open == 1  # the refusal gave its replica-wide slot back

        await client.post(f"/v1/workflows/{workflow_id}/cancel")  # its stream ends
        assert (await asyncio.wait_for(held, timeout=10)).status_code == 200
        assert state.key_streams.open == {}  # given back: the caller may stream again
