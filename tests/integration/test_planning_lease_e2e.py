"""Two planner replicas handed the same request while one of them plans it.

A rebalance hands a request that is not yet committed to another planner
replica while the first still plans it (the revoke drain does not cut long
handlers off), and the unsent sweep may send a slow request again. Which
partition a rebalance moves is up to the group, so the test hands the request
to both replicas directly: once the first planning LLM call is in flight, the
request (the same event, the same id) goes to every partition of the requests
topic, so each replica gets it. The model must be asked for a plan once,
counted at the LLM server, and the workflow must complete once.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from tests.support.client import GatewayClient
from tests.support.history import assert_histories_hold
from tests.support.recovery import assert_each_completed_exactly_once, start_many
from tests.support.stack import free_port, start_services
from tributary_devstack.stack import Stack
from tributary_scripted_llm import RecordedRequest, ScriptedLLMAdmin, ScriptedLLMServer
from tributary_shared.core import topics
from tributary_shared.core.topology import subscription

pytestmark = pytest.mark.integration

PLANNING_S = 8.0
"""How long the planning LLM call takes: ample time for the second replica to get its copy."""
WAITING = "another planner is planning this workflow; waiting for its plan"


def planner_calls(admin: ScriptedLLMAdmin, marker: str) -> list[RecordedRequest]:
    return [r for r in admin.requests(contains=marker) if r.response_format == "tributary_plan"]


async def planners_share_the_requests(bootstrap: str, *, within: float = 60) -> None:
    """Until the planner group is stable with two members (each assigned partitions)."""
    group_id = subscription("planner").group_id
    deadline = time.monotonic() + within
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            responses: list[Any] = await admin.describe_consumer_groups([group_id])
        finally:
            await admin.close()
        _error, _group, state, _protocol_type, _protocol, members = responses[0].groups[0][:6]
        if state == "Stable" and len(members) == 2:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"group {group_id} not shared: {state} {len(members)}")
        await asyncio.sleep(0.5)


async def hand_to_every_partition(bootstrap: str, raw_request: str, workflow_id: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for partition in range(topics.WORKFLOW_REQUESTS.partitions):
            await producer.send_and_wait(
                topics.WORKFLOW_REQUESTS.name,
                raw_request.encode(),
                key=workflow_id.encode(),
                partition=partition,
            )
    finally:
        await producer.stop()


async def test_a_request_handed_to_two_planners_at_once_is_planned_once(
    exclusive_topics: Stack, llm: ScriptedLLMServer, marker: str, api_key: str
) -> None:
    running = start_services(
        exclusive_topics,
        llm_base_url=llm.base_url,
        label="planning-lease",
        extra_env={"TRIBUTARY_LLM_TIMEOUT_S": str(PLANNING_S * 4)},
    )
    second = exclusive_topics.start_service(
        "planner", port=free_port(), env=running.env, instance="planning-lease-planner-2"
    )
    planners = [running.process("planner"), second]
    config = exclusive_topics.config
    bootstrap = f"127.0.0.1:{config.kafka_port}"
    client = GatewayClient(running.gateway_url, api_key)
    rule = llm.admin.add_rule(
        contains=marker,
        schema_name="tributary_plan",
        responses=[{"delay_ms": int(PLANNING_S * 1000)}],
    )
    try:
        second.wait_healthy(timeout=60)
        await planners_share_the_requests(bootstrap)
        [workflow_id] = await start_many(client, 1, marker)
        [requested] = await client.follow_until(workflow_id, "workflow.requested")
        in_flight_by = time.monotonic() + PLANNING_S
        while not planner_calls(llm.admin, marker):  # the first planner is planning
            assert time.monotonic() < in_flight_by, "no planning LLM call arrived"
            await asyncio.sleep(0.05)
        await hand_to_every_partition(bootstrap, json.dumps(requested.data), workflow_id)
        await assert_each_completed_exactly_once(client, [workflow_id])
    finally:
        await client.aclose()
        llm.admin.delete_rule(rule)
        second.terminate(grace=10)
        running.stop()

    assert len(planner_calls(llm.admin, marker)) == 1
    # The copies did arrive while planning was in flight: a replica waited for the plan.
    logs = [p.log_path.read_text().rsplit("===== ", 1)[-1] for p in planners]
    assert any(WAITING in line and workflow_id in line for log in logs for line in log.splitlines())
    await assert_histories_hold(
        bootstrap, f"redis://127.0.0.1:{config.redis_port}/0", [workflow_id]
    )
