"""Kafka or Redis away while workflows are in flight, against the real processes.

Kafka stopped: a cancel is answered and recorded, a deadline still ends its
workflow, and a keyed create is refused with 503 but kept. The gateway and the
planner are then killed before Kafka returns, so the copies of those events
waiting in their producers' buffers are lost: only the outbox (the planner's
sweep of what was recorded but never confirmed sent) can still deliver them.
Once Kafka is back, each final event reaches the egress topic and the refused
request runs to completion, with no retry by the client.

Redis refusing writes for memory (``OOM``) while steps are mid-flight: the
services wait it out instead of dead-lettering their work, and every workflow
completes once memory is freed.

The three Kafka cases share one outage: the gateway answers a request only
after giving Kafka its full acknowledgement timeout (15 s), so one outage
rather than three keeps the module short. Each case is its own test over what
that outage left.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError

from tests.support.client import GatewayClient
from tests.support.history import assert_histories_hold
from tests.support.keys import TEST_TENANT
from tests.support.recovery import (
    assert_each_completed_exactly_once,
    standard_task,
    start_many,
)
from tests.support.stack import RunningServices, start_services
from tributary_devstack.stack import Stack
from tributary_scripted_llm import ScriptedLLMServer
from tributary_shared.core import topics
from tributary_shared.core.keys import WorkflowKeys, idempotency_key

pytestmark = pytest.mark.integration

DEADLINE_S = 8
"""Long enough for the workflow to be running before Kafka stops, short enough to pass
soon after (stopping the broker takes about a second)."""

IDEMPOTENCY_KEY = f"outage-create-{uuid.uuid4().hex}"
"""Unique per run: a key is remembered for days, and a later run must not find this one."""


@pytest.fixture(scope="module")
def outage_llm() -> Iterator[ScriptedLLMServer]:
    # Slow enough that steps are mid-flight when Redis starts refusing writes.
    with ScriptedLLMServer(latency_ms=300) as server:
        yield server


@pytest.fixture(scope="module")
def outage_services(
    exclusive_topics: Stack, outage_llm: ScriptedLLMServer
) -> Iterator[RunningServices]:
    running = start_services(
        exclusive_topics,
        llm_base_url=outage_llm.base_url,
        label="outages",
        # What stayed unsent goes out 2 s after Kafka is back, not 10 s.
        extra_env={
            "TRIBUTARY_PLANNER_UNSENT_GRACE_S": "2",
            "TRIBUTARY_PLANNER_DEADLINE_SWEEP_INTERVAL_S": "0.5",
        },
    )
    yield running
    running.stop()


def bootstrap(running: RunningServices) -> str:
    return f"127.0.0.1:{running.stack.config.kafka_port}"


def redis_url(running: RunningServices) -> str:
    return f"redis://127.0.0.1:{running.stack.config.redis_port}/0"


@dataclass(frozen=True)
class KafkaOutage:
    """What happened while Kafka was stopped, and what the API showed meanwhile."""

    cancelled: str
    cancel_answer: httpx.Response
    expired: str
    created: str
    create_answer: httpx.Response
    status_while_away: dict[str, dict[str, Any]]
    """Each workflow as ``GET /v1/workflows/{id}`` showed it just before Kafka returned."""


@pytest.fixture(scope="module")
async def kafka_outage(
    outage_services: RunningServices, outage_llm: ScriptedLLMServer, api_key: str
) -> AsyncIterator[KafkaOutage]:
    stack = outage_services.stack
    marker = "#kafka-outage"
    # Steps of these two hang at the model, so they are still running when Kafka stops.
    hang = outage_llm.admin.add_rule(contains=marker, has_tools=True, responses=[{"hang": True}])
    client = GatewayClient(outage_services.gateway_url, api_key)
    killed: list[str] = []
    try:
        cancelled = await client.start(f"Wait to be cancelled {marker}")
        expired = await client.start(
            f"Wait for the deadline {marker}", options={"deadline_s": DEADLINE_S}
        )
        await client.wait_for_status(cancelled, "running")
        await client.wait_for_status(expired, "running")
        await asyncio.to_thread(stack.stop_kafka)
        try:
            # The deadline passes while Kafka is away (checked, or the case proves nothing).
            assert (await client.get(expired))["status"] == "running"
            await client.wait_for_status(expired, "failed", within=DEADLINE_S + 10)
            cancel_answer, create_answer = await asyncio.gather(
                client.http.post(
                    f"/v1/workflows/{cancelled}/cancel", json={"reason": "while Kafka was away"}
                ),
                client.http.post(
                    "/v1/workflows",
                    json={"task": standard_task(0, "#kafka-create")},
                    headers={"Idempotency-Key": IDEMPOTENCY_KEY},
                ),
            )
            created = await claimed_workflow(outage_services, IDEMPOTENCY_KEY)
            status_while_away = {w: await client.get(w) for w in (cancelled, expired, created)}
            # Their producers still hold the cancel, the deadline's failure and the
            # request, and would send them once Kafka is back: lose those copies.
            for name in ("gateway", "planner"):
                proc = outage_services.process(name)
                proc.kill(signal.SIGKILL)
                killed.append(name)
                assert proc.wait_exit(10)
        finally:
            await asyncio.to_thread(stack.start_kafka)
            for name in killed:
                await asyncio.to_thread(outage_services.start, name)
        yield KafkaOutage(
            cancelled=cancelled,
            cancel_answer=cancel_answer,
            expired=expired,
            created=created,
            create_answer=create_answer,
            status_while_away=status_while_away,
        )
    finally:
        await client.aclose()
        outage_llm.admin.delete_rule(hang)


async def claimed_workflow(running: RunningServices, key: str) -> str:
    """The workflow a refused keyed create kept: its 503 names none, its key does."""
    redis = Redis.from_url(redis_url(running))
    try:
        claim: Any = await redis.get(idempotency_key(TEST_TENANT, key))
    finally:
        await redis.aclose()
    assert claim is not None, "the refused create claimed no key"
    return str(claim.decode()).split()[0]


async def egress_events(
    bootstrap_servers: str, wanted: dict[str, str], *, within: float = 60
) -> dict[str, dict[str, Any]]:
    """Wait for each workflow's event of the given type on the egress topic; return them."""
    found: dict[str, dict[str, Any]] = {}
    consumer = AIOKafkaConsumer(
        topics.WORKFLOW_EVENTS.name,
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + within
        while len(found) < len(wanted) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    event = json.loads(record.value)
                    if wanted.get(event["workflow_id"]) == event["type"]:
                        found[event["workflow_id"]] = event
    finally:
        await consumer.stop()
    missing = {w: t for w, t in wanted.items() if w not in found}
    assert missing == {}, f"never reached {topics.WORKFLOW_EVENTS.name}: {missing}"
    return found


async def dead_letters_for(bootstrap_servers: str, workflow_ids: list[str]) -> list[bytes]:
    wanted = {w.encode() for w in workflow_ids}
    consumer = AIOKafkaConsumer(
        topics.DEAD_LETTERS.name,
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    letters: list[bytes] = []
    try:
        idle = 0
        while idle < 3:
            batch = await consumer.getmany(timeout_ms=1000)
            idle = 0 if batch else idle + 1
            letters += [r.value for rs in batch.values() for r in rs if r.key in wanted]
    finally:
        await consumer.stop()
    return letters


async def test_a_cancel_while_kafka_is_away_is_answered_and_published_once_it_returns(
    kafka_outage: KafkaOutage, outage_services: RunningServices
) -> None:
    workflow_id = kafka_outage.cancelled
    assert kafka_outage.cancel_answer.status_code == 200, kafka_outage.cancel_answer.text
    assert kafka_outage.cancel_answer.json() == {
        "workflow_id": workflow_id,
        "status": "cancelled",
        "reason": "while Kafka was away",
    }
    assert kafka_outage.status_while_away[workflow_id]["status"] == "cancelled"
    published = await egress_events(bootstrap(outage_services), {workflow_id: "workflow.cancelled"})
    assert published[workflow_id]["reason"] == "while Kafka was away"
    await assert_histories_hold(
        bootstrap(outage_services), redis_url(outage_services), [workflow_id]
    )


async def test_a_deadline_passed_while_kafka_is_away_fails_the_workflow_and_is_published_later(
    kafka_outage: KafkaOutage, outage_services: RunningServices
) -> None:
    workflow_id = kafka_outage.expired
    state = kafka_outage.status_while_away[workflow_id]
    assert state["status"] == "failed"
    assert state["error"]["code"] == "deadline_exceeded"
    published = await egress_events(bootstrap(outage_services), {workflow_id: "workflow.failed"})
    assert published[workflow_id]["error"]["code"] == "deadline_exceeded"
    await assert_histories_hold(
        bootstrap(outage_services), redis_url(outage_services), [workflow_id]
    )


async def test_a_keyed_create_refused_while_kafka_is_away_runs_once_it_returns_without_a_retry(
    kafka_outage: KafkaOutage, outage_services: RunningServices, api_key: str
) -> None:
    workflow_id = kafka_outage.created
    assert kafka_outage.create_answer.status_code == 503, kafka_outage.create_answer.text
    assert "same Idempotency-Key" in kafka_outage.create_answer.json()["detail"]
    assert kafka_outage.status_while_away[workflow_id]["status"] == "pending"
    # No retry: the sweep alone must send the kept request.
    client = GatewayClient(outage_services.gateway_url, api_key)
    try:
        await assert_each_completed_exactly_once(client, [workflow_id])
        retried = await client.http.post(
            "/v1/workflows",
            json={"task": kafka_outage.status_while_away[workflow_id]["task"]},
            headers={"Idempotency-Key": IDEMPOTENCY_KEY},
        )
    finally:
        await client.aclose()
    # A retry now finds the workflow that ran, and starts no other.
    assert retried.status_code == 202, retried.text
    assert retried.json()["workflow_id"] == workflow_id
    assert retried.json()["status"] == "completed"
    assert retried.headers["Idempotent-Replayed"] == "true"
    await assert_histories_hold(
        bootstrap(outage_services), redis_url(outage_services), [workflow_id]
    )


async def test_redis_out_of_memory_dead_letters_nothing_and_every_workflow_completes(
    outage_services: RunningServices, outage_llm: ScriptedLLMServer, api_key: str
) -> None:
    planning, stepping = "#redis-oom-plan", "#redis-oom-steps"
    # Slow model answers, so that the outage meets two workflows planning and two
    # with steps between their LLM calls.
    rules = [
        outage_llm.admin.add_rule(
            contains=planning, schema_name="tributary_plan", responses=[{"delay_ms": 1500}]
        ),
        outage_llm.admin.add_rule(
            contains=stepping, has_tools=True, responses=[{"delay_ms": 1000}]
        ),
    ]
    client = GatewayClient(outage_services.gateway_url, api_key)
    redis = Redis.from_url(redis_url(outage_services), decode_responses=True)
    try:
        ids = await start_many(client, 2, planning) + await start_many(client, 2, stepping, first=2)
        expected = ["planning", "planning", "running", "running"]
        for workflow_id, status in zip(ids, expected, strict=True):
            await client.wait_for_status(workflow_id, status)
        async with refusing_writes_for_memory(redis):
            # Kafka delivers an already planned request again meanwhile (as after a
            # rebalance): its handler meets OOM at once and must wait, not use up its
            # attempts. (A planning workflow's copy would queue behind its first.)
            await redeliver_request(outage_services, redis, ids[2])
            await asyncio.sleep(4)
        # Read as stored: the API's consistent read is a MULTI, which Redis refuses
        # under OOM as well. Nothing moved on meanwhile: the outage met work in flight.
        assert [await redis.hget(WorkflowKeys(w).workflow, "status") for w in ids] == expected
        await assert_each_completed_exactly_once(client, ids)
    finally:
        for rule in rules:
            outage_llm.admin.delete_rule(rule)
        await redis.aclose()
        await client.aclose()
    assert await dead_letters_for(bootstrap(outage_services), ids) == []
    await assert_histories_hold(bootstrap(outage_services), redis_url(outage_services), ids)


@asynccontextmanager
async def refusing_writes_for_memory(redis: Redis) -> AsyncIterator[None]:
    """Redis answers every write with OOM inside; its settings are restored after."""
    saved: dict[str, str] = {}
    for name in ("maxmemory", "maxmemory-policy"):
        current: Any = await redis.config_get(name)
        saved.update(current)
    try:
        await redis.config_set("maxmemory-policy", "noeviction")
        await redis.config_set("maxmemory", 1)
        with pytest.raises(OutOfMemoryError):
            await redis.set("tributary:test:oom-probe", "x")
        yield
    finally:
        for name, value in saved.items():
            await redis.config_set(name, value)


async def redeliver_request(running: RunningServices, redis: Redis, workflow_id: str) -> None:
    """Put a workflow's logged request on the requests topic again, under its own id."""
    entries: Any = await redis.xrange(WorkflowKeys(workflow_id).log, count=1)
    [(_, fields)] = entries
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap(running))
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.WORKFLOW_REQUESTS.name, fields["event"].encode(), key=workflow_id.encode()
        )
    finally:
        await producer.stop()
