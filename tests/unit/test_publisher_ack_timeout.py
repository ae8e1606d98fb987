"""A publish while the broker is away: the gateway's bounded publish gives up, a worker's waits.

aiokafka re-sends a batch for as long as its partition's leader is known, and a
stopped broker stays the known leader, so an acknowledgement never comes and
never fails. The stand-in broker here behaves that way: it takes every event
and acknowledges none.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import httpx
import pytest
from faststream.kafka import KafkaBroker

from tests.support.gateway_twins import gateway_over_twins
from tests.support.keys import bearer, issue
from tributary_shared.core import machine
from tributary_shared.core.events import WorkflowRequested
from tributary_shared.core.status import WorkflowStatus
from tributary_shared.runtime.kafka.publisher import KafkaEventPublisher
from tributary_shared.runtime.outages import is_outage
from tributary_shared.twins import (
    MemoryApiKeyStore,
    MemoryWorkflowStore,
)

BOUND_S = 0.2


class AwayBroker:
    """Queues every event and acknowledges none, as aiokafka does while the broker is down."""

    def __init__(self) -> None:
        self.queued = 0

    async def publish(self, *_args: Any, **_kwargs: Any) -> asyncio.Future[None]:
        self.queued += 1
        return asyncio.get_running_loop().create_future()


def publisher_over(broker: AwayBroker, ack_timeout_s: float | None) -> KafkaEventPublisher:
    return KafkaEventPublisher(cast(KafkaBroker, broker), ack_timeout_s=ack_timeout_s)


def request() -> WorkflowRequested:
    return WorkflowRequested(
        workflow_id="wf_" + "a" * 32, tenant_id="acme", task="Summarise the report"
    )


async def test_a_bounded_publish_fails_as_an_outage_once_its_time_is_up() -> None:
    broker = AwayBroker()
    started = time.monotonic()
    publishing = asyncio.create_task(publisher_over(broker, BOUND_S).publish([request()]))
    done, _ = await asyncio.wait({publishing}, timeout=BOUND_S + 2)
    assert done == {publishing}, "the bounded publish is still waiting"
    assert time.monotonic() - started >= BOUND_S
    assert broker.queued == 1
    failure = publishing.exception()
    assert isinstance(failure, TimeoutError)
    assert is_outage(failure)  # a worker that gets one waits Kafka out


async def test_an_unbounded_publish_waits_for_the_broker() -> None:
    publishing = asyncio.create_task(publisher_over(AwayBroker(), None).publish([request()]))
    done, _ = await asyncio.wait({publishing}, timeout=BOUND_S * 2)
    assert done == set()
    publishing.cancel()


@pytest.fixture
def store() -> MemoryWorkflowStore:
    return MemoryWorkflowStore()


@pytest.fixture
async def gateway(store: MemoryWorkflowStore) -> Any:
    keys = MemoryApiKeyStore()
    publisher = publisher_over(AwayBroker(), BOUND_S)
    async with gateway_over_twins(store=store, publisher=publisher, keys=keys) as client:
        client.headers.update(bearer(await issue(keys, "acme")))
        yield client


async def test_with_kafka_away_a_keyed_create_is_answered_503_and_kept(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore
) -> None:
    async with asyncio.timeout(5):
        answer = await gateway.post(
            "/v1/workflows", json={"task": "Summarise"}, headers={"Idempotency-Key": "k-1"}
        )
    assert answer.status_code == 503
    [kept] = store.records.values()
    assert kept.status is WorkflowStatus.PENDING


async def test_with_kafka_away_a_cancel_is_answered_and_recorded(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore
) -> None:
    running = request()
    await store.create_workflow(running, deadline_at=time.time() + 600)
    now = time.time()
    await store.apply(
        machine.start_planning(running.workflow_id, owner="planner", lease_until=now + 60, now=now)
    )
    async with asyncio.timeout(5):
        answer = await gateway.post(f"/v1/workflows/{running.workflow_id}/cancel")
    assert answer.status_code == 200
    assert answer.json()["status"] == "cancelled"
    assert store.records[running.workflow_id].status is WorkflowStatus.CANCELLED
    # Still noted as unsent, so the planner's sweep publishes the cancellation later.
    final = store.records[running.workflow_id].final_event
    assert final is not None
    assert final.event_id in {n.event_id for n in await store.unsent(time.time() + 1)}
