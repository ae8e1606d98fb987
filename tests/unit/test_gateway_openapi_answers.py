"""The gateway's error answers are the ones its OpenAPI document lists, body and headers.

A client codes against ``/openapi.json`` (the schema fuzz test holds the live
gateway to it): each answer here is checked by schemathesis against the document
the same app serves, for its status, content type, body and headers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpx
import pytest
import schemathesis
from redis import exceptions as redis_errors
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.gateway_twins import gateway_over_twins
from tests.support.keys import bearer, issue
from tributary_shared.core.access import Scope
from tributary_shared.core.events import EventEnvelope
from tributary_shared.twins import MemoryApiKeyStore, MemoryPublisher, MemoryWorkflowStore

WORKFLOW = "wf_" + "0" * 32
DOCUMENTED = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
NOT_UTF8 = b'{"task": "\xff\xfe"}'


class Kafka:
    """Takes events while up; refuses them, as an unreachable broker does, while down."""

    def __init__(self) -> None:
        self.down = False
        self._topics = MemoryPublisher()

    async def publish(self, events: Iterable[EventEnvelope]) -> None:
        if self.down:
            raise ConnectionError("no broker reachable")
        await self._topics.publish(events)


class UnreachableStore(MemoryWorkflowStore):
    """A workflow store whose Redis has gone away."""

    async def get_workflow(self, workflow_id: str) -> Any:
        raise redis_errors.ConnectionError("Connection refused")


@pytest.fixture
def kafka() -> Kafka:
    return Kafka()


@pytest.fixture
def store() -> MemoryWorkflowStore:
    return MemoryWorkflowStore()


@pytest.fixture
async def gateway(store: MemoryWorkflowStore, kafka: Kafka) -> AsyncIterator[httpx.AsyncClient]:
    keys = MemoryApiKeyStore()
    async with gateway_over_twins(store=store, publisher=kafka, keys=keys) as client:
        client.headers.update(bearer(await issue(keys, "acme", scopes={Scope.ADMIN})))
        yield client


async def assert_documented(
    gateway: httpx.AsyncClient, method: str, path: str, answer: httpx.Response
) -> None:
    """``answer`` (to ``method path``) is what the gateway's own document says it may be."""
    document = (await gateway.get("/openapi.json")).json()
    documented = document["paths"][path][method.lower()]["responses"].get(str(answer.status_code))
    # A status listed without a body schema would let any body through.
    assert documented is not None, answer.status_code
    assert "content" in documented, answer.status_code
    operation = schemathesis.openapi.from_dict(document)[path][method]
    named = {"workflow_id": WORKFLOW} if "{workflow_id}" in path else {}
    case = operation.Case(path_parameters=named)
    case.validate_response(answer, checks=DOCUMENTED)


@pytest.mark.parametrize(
    ("method", "path", "url"),
    [
        ("POST", "/v1/workflows", "/v1/workflows"),
        ("POST", "/v1/workflows/{workflow_id}/cancel", f"/v1/workflows/{WORKFLOW}/cancel"),
        ("POST", "/v1/keys", "/v1/keys"),
    ],
)
async def test_a_body_that_is_not_utf8_gets_a_documented_400(
    gateway: httpx.AsyncClient, method: str, path: str, url: str
) -> None:
    answer = await gateway.request(
        method, url, content=NOT_UTF8, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400
    assert isinstance(answer.json()["detail"], str)
    await assert_documented(gateway, method, path, answer)


async def test_both_shapes_of_a_422_are_documented(gateway: httpx.AsyncClient) -> None:
    # FastAPI's own: the fields that fail validation, as a list.
    missing = await gateway.post("/v1/workflows", json={"options": {}})
    assert missing.status_code == 422
    assert isinstance(missing.json()["detail"], list)
    await assert_documented(gateway, "POST", "/v1/workflows", missing)
    # The gateway's own: a sentence naming the rule the request breaks.
    blank = await gateway.post("/v1/workflows", json={"task": "   "})
    assert blank.status_code == 422
    assert blank.json()["detail"] == "task must not be blank"
    await assert_documented(gateway, "POST", "/v1/workflows", blank)


async def test_kafka_away_gets_a_documented_503_with_retry_after(
    gateway: httpx.AsyncClient, kafka: Kafka
) -> None:
    kafka.down = True
    refused = await gateway.post("/v1/workflows", json={"task": "Summarise the report"})
    assert refused.status_code == 503
    assert int(refused.headers["Retry-After"]) >= 1
    await assert_documented(gateway, "POST", "/v1/workflows", refused)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/workflows/{workflow_id}"),
        ("POST", "/v1/workflows/{workflow_id}/cancel"),
        ("GET", "/v1/workflows/{workflow_id}/events"),
    ],
)
async def test_redis_away_gets_a_documented_503_on_every_route(
    kafka: Kafka, method: str, path: str
) -> None:
    keys = MemoryApiKeyStore()
    async with gateway_over_twins(store=UnreachableStore(), publisher=kafka, keys=keys) as client:
        client.headers.update(bearer(await issue(keys, "acme")))
        refused = await client.request(method, path.format(workflow_id=WORKFLOW))
        assert refused.status_code == 503
        assert int(refused.headers["Retry-After"]) >= 1
        await assert_documented(client, method, path, refused)


async def test_no_key_gets_a_documented_401_with_its_challenge(
    gateway: httpx.AsyncClient,
) -> None:
    for method, path in [("GET", "/v1/workflows"), ("GET", "/v1/keys")]:
        refused = await gateway.request(method, path, headers={"Authorization": ""})
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        await assert_documented(gateway, method, path, refused)


async def test_not_ready_is_a_documented_503(gateway: httpx.AsyncClient) -> None:
    # The twins' gateway has no Redis and no Kafka to reach.
    not_ready = await gateway.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.json() == {
        "status": "not ready",
        "redis": "unreachable",
        "kafka": "unreachable",
    }
    await assert_documented(gateway, "GET", "/readyz", not_ready)
