"""Starting a workflow through the gateway when Kafka or the gateway fails halfway.

The real gateway app runs on the in-memory twins (``app_over``) with a Kafka
stand-in that can be down. What a client relies on: a ``503`` without an
Idempotency-Key started nothing, so a retry starts afresh; with a key, a retry
after any failure (a ``503``, or a gateway that died after claiming the key or
after writing the workflow) gets a workflow that exists and has been sent, once
per retry at most and always under its first event id.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpx
import pytest
from redis import exceptions as redis_errors

from tests.support.gateway_twins import gateway_over_twins
from tests.support.keys import bearer, issue
from tributary_shared.core import machine
from tributary_shared.core.events import EventEnvelope, WorkflowRequested
from tributary_shared.core.machine import Transition
from tributary_shared.core.records import Applied
from tributary_shared.core.status import WorkflowStatus
from tributary_shared.runtime.control import deadline_at
from tributary_shared.runtime.settings import WorkflowDefaults
from tributary_shared.twins import (
    MemoryApiKeyStore,
    MemoryPublisher,
    MemoryWorkflowStore,
)

KEY = {"Idempotency-Key": "order-42"}
BODY = {"task": "Summarise the quarterly report"}


class Kafka:
    """Takes events while up; refuses them, as an unreachable broker does, while down."""

    def __init__(self) -> None:
        self.down = False
        self._topics = MemoryPublisher()

    async def publish(self, events: Iterable[EventEnvelope]) -> None:
        if self.down:
            raise ConnectionError("no broker reachable")
        await self._topics.publish(events)

    @property
    def requests(self) -> list[WorkflowRequested]:
        sent = self._topics.topics.values()
        return [e for events in sent for e in events if isinstance(e, WorkflowRequested)]


class Crashed(Exception):
    """The gateway process died here."""


@pytest.fixture
def store() -> MemoryWorkflowStore:
    return MemoryWorkflowStore()


@pytest.fixture
def kafka() -> Kafka:
    return Kafka()


@pytest.fixture
async def gateway(store: MemoryWorkflowStore, kafka: Kafka) -> AsyncIterator[httpx.AsyncClient]:
    keys = MemoryApiKeyStore()
    # A crashed request answers 500 here, as the client of a dead process sees a failure.
    async with gateway_over_twins(
        store=store, publisher=kafka, keys=keys, raise_app_exceptions=False
    ) as client:
        client.headers.update(bearer(await issue(keys, "acme")))
        yield client


async def start(gateway: httpx.AsyncClient, headers: dict[str, str] | None = None) -> Any:
    return await gateway.post("/v1/workflows", json=BODY, headers=headers or {})


async def logged_request(store: MemoryWorkflowStore, workflow_id: str) -> WorkflowRequested:
    first = (await store.read_log(workflow_id, count=1))[0]
    return WorkflowRequested.model_validate_json(first.event_json)


async def test_without_a_key_a_refused_request_is_ended_and_a_retry_starts_afresh(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, kafka: Kafka
) -> None:
    kafka.down = True
    refused = await start(gateway)
    assert refused.status_code == 503
    assert refused.json()["detail"] == "the workflow could not be queued; please retry"
    [abandoned] = store.records.values()
    assert abandoned.status is WorkflowStatus.FAILED  # not left pending for nobody

    kafka.down = False
    accepted = await start(gateway)
    assert accepted.status_code == 202
    assert accepted.json()["workflow_id"] != abandoned.workflow_id
    assert [r.workflow_id for r in kafka.requests] == [accepted.json()["workflow_id"]]


async def test_with_a_key_a_refused_request_is_sent_by_the_retry(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, kafka: Kafka
) -> None:
    kafka.down = True
    refused = await start(gateway, KEY)
    assert refused.status_code == 503
    assert "retry with the same Idempotency-Key" in refused.json()["detail"]
    [waiting] = store.records.values()
    assert waiting.status is WorkflowStatus.PENDING  # not failed and pinned to the key
    assert (await start(gateway, KEY)).status_code == 503  # Kafka still down

    kafka.down = False
    accepted = await start(gateway, KEY)
    assert accepted.status_code == 202
    assert accepted.headers["Idempotent-Replayed"] == "true"
    assert accepted.json()["workflow_id"] == waiting.workflow_id
    assert accepted.json()["status"] == "pending"
    logged = await logged_request(store, waiting.workflow_id)
    assert [(r.workflow_id, r.event_id) for r in kafka.requests] == [
        (waiting.workflow_id, logged.event_id)
    ]
    assert (await gateway.get(f"/v1/workflows/{waiting.workflow_id}")).status_code == 200


async def test_a_retry_after_the_gateway_died_holding_the_key_gets_a_real_workflow(
    gateway: httpx.AsyncClient,
    store: MemoryWorkflowStore,
    kafka: Kafka,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = store.apply

    async def dies_before_writing(transition: Transition) -> Applied:
        monkeypatch.setattr(store, "apply", real)
        raise Crashed

    monkeypatch.setattr(store, "apply", dies_before_writing)
    assert (await start(gateway, KEY)).status_code == 500
    assert kafka.requests == []

    retried = await start(gateway, KEY)
    assert retried.status_code == 202
    workflow_id = retried.json()["workflow_id"]
    shown = await gateway.get(f"/v1/workflows/{workflow_id}")
    assert shown.status_code == 200, "the key names a workflow that does not exist"
    assert shown.json()["task"] == BODY["task"]
    assert [r.workflow_id for r in kafka.requests] == [workflow_id]


async def test_a_retry_after_the_gateway_died_before_sending_sends_the_first_request(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, kafka: Kafka
) -> None:
    # What the first attempt left: the workflow and its key written, nothing sent.
    first = WorkflowRequested(workflow_id="wf_" + "1" * 32, tenant_id="acme", task=BODY["task"])
    await store.create_workflow(
        first,
        deadline_at=deadline_at(first, WorkflowDefaults()),
        idempotency_key_value=KEY["Idempotency-Key"],
    )

    retried = await start(gateway, KEY)
    assert retried.status_code == 202
    assert retried.json()["workflow_id"] == first.workflow_id
    # The same event id: a planner that got the first copy sees a duplicate.
    assert [r.event_id for r in kafka.requests] == [first.event_id]


async def test_a_retry_of_a_workflow_under_way_sends_nothing_again(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, kafka: Kafka
) -> None:
    accepted = await start(gateway, KEY)
    workflow_id = accepted.json()["workflow_id"]
    now = time.time()
    await store.apply(
        machine.start_planning(workflow_id, owner="planner", lease_until=now + 60, now=now)
    )

    retried = await start(gateway, KEY)
    assert retried.status_code == 202
    assert retried.json() == {**accepted.json(), "status": "planning"}
    assert len(kafka.requests) == 1


async def test_a_key_used_for_another_request_is_refused_without_naming_the_first(
    gateway: httpx.AsyncClient, kafka: Kafka
) -> None:
    first = (await start(gateway, KEY)).json()["workflow_id"]
    other = await gateway.post("/v1/workflows", json={"task": "Something else"}, headers=KEY)
    assert other.status_code == 422
    assert "already used for a different request" in other.json()["detail"]
    assert first not in other.text
    assert len(kafka.requests) == 1


async def test_redis_away_is_a_503_to_retry_not_a_500(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    accepted = await start(gateway)
    workflow_id = accepted.json()["workflow_id"]

    async def away(*_args: object, **_kwargs: object) -> None:
        raise redis_errors.OutOfMemoryError("OOM command not allowed")

    monkeypatch.setattr(store, "get_workflow", away)
    answer = await gateway.get(f"/v1/workflows/{workflow_id}")
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "2"
    assert "retry" in answer.json()["detail"]
