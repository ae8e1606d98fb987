"""CORS: pages of the configured origins may call the API from a browser and read its
answers, errors included; pages of any other origin, or of any origin when none is
configured, get no CORS headers (so the browser keeps them out)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.support.gateway_twins import gateway_over_twins
from tests.support.keys import bearer, issue
from tributary_gateway.settings import GatewaySettings
from tributary_gateway.streams import StreamSlots
from tributary_shared.core import machine
from tributary_shared.core.access import ApiKeyRecord
from tributary_shared.core.events import WorkflowCancelled, WorkflowRequested
from tributary_shared.twins import MemoryApiKeyStore, MemoryPublisher, MemoryWorkflowStore

ALLOWED = "https://inspector.example.com"
OTHER = "https://evil.example.net"


class KeysAway(MemoryApiKeyStore):
    """A key store whose Redis is unreachable."""

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        raise RedisConnectionError("connection refused")


async def client(
    keys: MemoryApiKeyStore,
    *,
    origins: list[str],
    streams: StreamSlots | None = None,
    store: MemoryWorkflowStore | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_over_twins(
        store=store or MemoryWorkflowStore(),
        publisher=MemoryPublisher(),
        keys=keys,
        settings=GatewaySettings(cors_origins=origins, max_body_bytes=1024),
        streams=streams,
    ) as gateway:
        yield gateway


@pytest.fixture
async def gateway() -> AsyncIterator[httpx.AsyncClient]:
    async for each in client(MemoryApiKeyStore(), origins=[ALLOWED, "http://localhost:5173"]):
        yield each


def preflight(origin: str, method: str, headers: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


async def test_a_preflight_from_an_allowed_origin_is_answered_without_a_key(
    gateway: httpx.AsyncClient,
) -> None:
    response = await gateway.options(
        "/v1/workflows",
        headers=preflight(ALLOWED, "POST", "authorization, content-type, idempotency-key"),
    )

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert set(response.headers["access-control-allow-methods"].split(", ")) >= {
        "GET",
        "POST",
        "DELETE",
    }
    allowed_headers = response.headers["access-control-allow-headers"].lower()
    for header in ("authorization", "content-type", "idempotency-key", "last-event-id"):
        assert header in allowed_headers
    assert "access-control-allow-credentials" not in response.headers


async def test_a_preflight_from_another_origin_is_refused(gateway: httpx.AsyncClient) -> None:
    response = await gateway.options(
        "/v1/workflows", headers=preflight(OTHER, "POST", "authorization")
    )

    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


async def test_an_answer_to_an_allowed_origin_carries_the_cors_headers() -> None:
    keys = MemoryApiKeyStore()
    async for gateway in client(keys, origins=[ALLOWED]):
        key = await issue(keys, "acme")
        mine = await gateway.get("/v1/workflows", headers={**bearer(key), "Origin": ALLOWED})
        theirs = await gateway.get("/v1/workflows", headers={**bearer(key), "Origin": OTHER})

    assert mine.status_code == 200
    assert mine.headers["access-control-allow-origin"] == ALLOWED
    exposed = mine.headers["access-control-expose-headers"].lower()
    for header in ("retry-after", "location", "www-authenticate", "idempotent-replayed"):
        assert header in exposed
    assert "access-control-allow-credentials" not in mine.headers
    assert theirs.status_code == 200  # answered, but the browser keeps the page out
    assert "access-control-allow-origin" not in theirs.headers


async def test_errors_to_an_allowed_origin_carry_the_cors_headers() -> None:
    """A page must be able to read why it was refused: no key, too many, too large."""
    keys = MemoryApiKeyStore()
    store = MemoryWorkflowStore()
    async for gateway in client(keys, origins=[ALLOWED], streams=StreamSlots(0), store=store):
        key = await issue(keys, "acme")
        workflow_id = f"wf_{uuid.uuid4().hex}"
        await store.create_workflow(
            WorkflowRequested(workflow_id=workflow_id, tenant_id="acme", task="t"),
            deadline_at=time.time() + 600,
        )
        origin = {"Origin": ALLOWED}
        unauthorized = await gateway.get("/v1/workflows", headers=origin)
        too_many = await gateway.get(
            f"/v1/workflows/{workflow_id}/events", headers={**origin, **bearer(key)}
        )
        too_large = await gateway.post(
            "/v1/workflows",
            headers={**origin, **bearer(key), "Content-Type": "application/json"},
            content=b"{" + b" " * 2048 + b"}",
        )

    for response, status in ((unauthorized, 401), (too_many, 429), (too_large, 413)):
        assert response.status_code == status
        assert response.headers["access-control-allow-origin"] == ALLOWED
    assert "retry-after" in too_many.headers


async def test_a_storage_outage_to_an_allowed_origin_carries_the_cors_headers() -> None:
    async for gateway in client(KeysAway(), origins=[ALLOWED]):
        some_key = bearer("trb_" + "0" * 12 + "_" + "a" * 40)
        response = await gateway.get("/v1/workflows", headers={"Origin": ALLOWED, **some_key})

    assert response.status_code == 503
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert response.headers["retry-after"] == "2"


async def test_without_configured_origins_there_are_no_cors_headers() -> None:
    keys = MemoryApiKeyStore()
    async for gateway in client(keys, origins=[]):
        key = await issue(keys, "acme")
        answered = await gateway.get("/v1/workflows", headers={**bearer(key), "Origin": ALLOWED})
        refused = await gateway.get("/v1/workflows", headers={"Origin": ALLOWED})
        preflighted = await gateway.options(
            "/v1/workflows", headers=preflight(ALLOWED, "POST", "authorization")
        )

    for response in (answered, refused, preflighted):
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]
    assert (answered.status_code, refused.status_code) == (200, 401)
    assert preflighted.status_code == 405


@pytest.mark.parametrize("origin", ["*", "https://app.example.com/", "app.example.com"])
def test_only_exact_origins_are_accepted(origin: str) -> None:
    with pytest.raises(ValueError, match="exact origin"):
        GatewaySettings(cors_origins=[origin])


def test_origins_are_given_comma_separated_or_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIBUTARY_GATEWAY_CORS_ORIGINS", f"{ALLOWED}, http://localhost:5173")
    assert GatewaySettings().cors_origins == [ALLOWED, "http://localhost:5173"]
    monkeypatch.setenv("TRIBUTARY_GATEWAY_CORS_ORIGINS", f'["{ALLOWED}"]')
    assert GatewaySettings().cors_origins == [ALLOWED]
    monkeypatch.delenv("TRIBUTARY_GATEWAY_CORS_ORIGINS")
    assert GatewaySettings().cors_origins == []


async def test_an_event_stream_opened_with_a_token_from_an_allowed_origin_carries_them() -> None:
    """What a cross-origin EventSource needs: the stream's own answer names the origin."""
    keys, store = MemoryApiKeyStore(), MemoryWorkflowStore()
    async for gateway in client(keys, origins=[ALLOWED], store=store):
        key = await issue(keys, "acme")
        workflow_id = f"wf_{uuid.uuid4().hex}"
        await store.create_workflow(
            WorkflowRequested(workflow_id=workflow_id, tenant_id="acme", task="t"),
            deadline_at=time.time() + 600,
        )
        await store.apply(machine.cancel(WorkflowCancelled(workflow_id=workflow_id)))
        issued = await gateway.post(
            f"/v1/workflows/{workflow_id}/stream-token", headers={**bearer(key), "Origin": ALLOWED}
        )
        streamed = await gateway.get(issued.json()["stream_url"], headers={"Origin": ALLOWED})
        refused = await gateway.get(issued.json()["stream_url"], headers={"Origin": OTHER})

    assert issued.headers["access-control-allow-origin"] == ALLOWED
    assert streamed.status_code == 200
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert streamed.headers["access-control-allow-origin"] == ALLOWED
    assert "access-control-allow-origin" not in refused.headers  # the browser drops it
