"""Duplicate deliveries change nothing; replicas come and go under load and lose nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import pytest
from aiokafka import AIOKafkaProducer

from tests.support.client import GatewayClient
from tests.support.history import assert_histories_hold
from tests.support.recovery import (
    assert_each_completed_exactly_once,
    assert_steps_ran_once_per_attempt,
    start_many,
    wait_until_all_end,
)
from tests.support.stack import RunningServices, free_port, start_services
from tributary_devstack.process import ServiceProcess
from tributary_devstack.stack import Stack
from tributary_scripted_llm import RecordedRequest, ScriptedLLMAdmin, ScriptedLLMServer
from tributary_shared.core.events import decode_event, home_topic

pytestmark = pytest.mark.integration


@pytest.fixture
async def producer(services: RunningServices) -> AsyncIterator[AIOKafkaProducer]:
    kafka = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{services.stack.config.kafka_port}")
    await kafka.start()
    yield kafka
    await kafka.stop()


async def redeliver(producer: AIOKafkaProducer, raw_events: list[str]) -> None:
    """Send events again exactly as they were: same ids, same key, same topic."""
    for raw in raw_events:
        event = decode_event(raw)
        await producer.send_and_wait(
            home_topic(event), raw.encode(), key=event.workflow_id.encode()
        )


async def test_redelivered_events_after_the_end_change_nothing(
    gateway: GatewayClient, producer: AIOKafkaProducer, marker: str
) -> None:
    workflow_id, events, state = await gateway.run(
        f"compute 1 + 1 {marker}; compute 2 + 2; compute 3 + 3"
    )
    consumed = [
        json.dumps(e.data)
        for e in events
        if e.type in {"workflow.requested", "step.dispatched", "step.completed"}
    ]
    await redeliver(producer, consumed + consumed)
    await asyncio.sleep(3)
    again = await gateway.follow(workflow_id)
    assert [e.id for e in again] == [e.id for e in events]
    assert await gateway.get(workflow_id) == state


async def test_duplicates_while_running_yield_one_result_per_step(
    gateway: GatewayClient,
    llm_admin: ScriptedLLMAdmin,
    producer: AIOKafkaProducer,
    marker: str,
) -> None:
    llm_admin.add_rule(contains=marker, has_tools=True, responses=[{"delay_ms": 800}])
    workflow_id = await gateway.start(f"compute 4 + 4 {marker}; compute 5 + 5")
    await gateway.wait_for_status(workflow_id, "running")
    log = await gateway.follow_until(workflow_id, "step.dispatched", count=2)
    dispatched = [json.dumps(e.data) for e in log if e.type == "step.dispatched"]
    await redeliver(producer, dispatched * 3)
    events = await gateway.follow(workflow_id)
    completed = [e.data["step_id"] for e in events if e.type == "step.completed"]
    assert sorted(completed) == ["s1", "s2"]
    assert (await gateway.get(workflow_id))["status"] == "completed"


CAP_PER_REPLICA = 4
SLOW_LLM_S = 0.4


def most_at_once(requests: list[RecordedRequest], duration_s: float) -> int:
    """The most requests in flight together, each taking ``duration_s`` from its arrival."""
    arrivals = sorted(r.timestamp for r in requests)
    most = 0
    for index, start in enumerate(arrivals):
        # Those that arrived before ``start`` and are still being answered.
        most = max(most, sum(1 for a in arrivals[: index + 1] if a > start - duration_s))
    return most


@pytest.fixture(scope="module")
def slow_llm() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer(latency_ms=400) as server:
        yield server


async def test_replicas_added_and_removed_under_load_lose_nothing(
    exclusive_topics: Stack, slow_llm: ScriptedLLMServer, marker: str, api_key: str
) -> None:
    running = start_services(
        exclusive_topics,
        llm_base_url=slow_llm.base_url,
        label="scale",
        extra_env={"TRIBUTARY_MAX_IN_FLIGHT": str(CAP_PER_REPLICA)},
    )
    extra: list[ServiceProcess] = []
    client = GatewayClient(running.gateway_url, api_key)
    try:
        ids = await start_many(client, 12, marker)
        for index in (2, 3):
            extra.append(
                exclusive_topics.start_service(
                    "agent-runner",
                    port=free_port(),
                    env=running.env,
                    instance=f"scale-agent-runner-{index}",
                )
            )
        for proc in extra:
            proc.wait_healthy(timeout=60)
        more = await start_many(client, 12, marker, first=12)
        await asyncio.sleep(1.5)
        for proc in extra:  # scale back down while work is in flight
            proc.terminate(grace=30)
        await assert_each_completed_exactly_once(client, ids + more)
        states = await wait_until_all_end(client, ids + more)
    finally:
        await client.aclose()
        for proc in extra:
            proc.terminate(grace=10)
        running.stop()
    workers = [running.process("agent-runner"), *extra]
    busy = [p for p in workers if "step step.completed" in p.log_path.read_text()]
    assert len(busy) >= 2, "the added replicas took no share of the work"
    # No step ran twice through the scale events: counted at the LLM server.
    assert_steps_ran_once_per_attempt(slow_llm.admin, states)
    # Nor did more calls run at once than the replicas' caps allow, rebalances or not.
    agent_calls = [r for r in slow_llm.admin.requests(contains=marker) if r.tools]
    assert CAP_PER_REPLICA <= most_at_once(agent_calls, SLOW_LLM_S) <= CAP_PER_REPLICA * 3
    config = exclusive_topics.config
    await assert_histories_hold(
        f"127.0.0.1:{config.kafka_port}", f"redis://127.0.0.1:{config.redis_port}/0", ids + more
    )
