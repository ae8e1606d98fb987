"""``tributary replay`` and ``tributary events export`` against a real run on the real stack.

The commands run as the operator runs them, as processes with the stack's Kafka
settings and a Redis address where nothing listens: the run is rebuilt from Kafka
alone, and still is after the workflow's keys are deleted from Redis.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from redis.asyncio import Redis

from tests.integration.test_dag_e2e import DIAMOND
from tests.support.cli_runs import cli_env, tributary
from tests.support.client import GatewayClient
from tests.support.recovery import agent_calls_per_step
from tributary_cli.replay.source import REPLAYED_TOPICS, partition_of
from tributary_devstack.infra import kafka_client_security
from tributary_devstack.kafka_admin import describe_partitions_async
from tributary_devstack.stack import Stack
from tributary_scripted_llm import ScriptedLLMAdmin
from tributary_shared.core.keys import PREFIX

pytestmark = pytest.mark.integration


async def replay_json(env: dict[str, str], *argv: str) -> dict[str, Any]:
    done = await tributary(env, "replay", *argv, "--json")
    assert done.status == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


async def partitions_holding(
    stack: Stack, workflow_id: str, topic: str, partitions: int
) -> set[int]:
    """Every partition of ``topic`` with a message keyed by the workflow, read in full."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.config.kafka_bootstrap,
        **kafka_client_security(stack.config).client_kwargs(),
        group_id=None,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        found: set[int] = set()
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batch.items():
                if any(r.key == workflow_id.encode() for r in records):
                    found.add(tp.partition)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return found
    finally:
        await consumer.stop()


async def delete_from_redis(stack: Stack, workflow_id: str) -> int:
    redis = Redis.from_url(stack.config.redis_url)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{PREFIX}:wf:{{{workflow_id}}}*")]
        assert keys, "the workflow had no keys to delete"
        await redis.delete(*keys)
        return len(keys)
    finally:
        await redis.aclose()


def step_ids(data: dict[str, Any]) -> list[str]:
    return [step["step_id"] for step in data["steps"]]


def all_calls(data: dict[str, Any]) -> Sequence[dict[str, Any]]:
    return [
        *data["planning"]["calls"],
        *(
            call
            for step in data["steps"]
            for attempt in step["attempts"]
            for iteration in attempt["iterations"]
            for call in iteration["calls"]
        ),
        *data["synthesis"]["calls"],
    ]


async def test_a_run_replays_from_kafka_alone_and_from_its_export(
    gateway: GatewayClient,
    llm_admin: ScriptedLLMAdmin,
    marker: str,
    stack: Stack,
    tmp_path: Path,
) -> None:
    # The plan's first try is refused with a 429: the planner's call has two tries.
    llm_admin.add_rule(
        contains=marker,
        schema_name="tributary_plan",
        responses=[
            {"status": 429, "headers": {"Retry-After": "1"}},
            {"json": {"steps": DIAMOND}},
        ],
    )
    workflow_id, _, state = await gateway.run(
        f"Diamond replay {marker}", options={"token_budget": 200_000}
    )
    assert state["status"] == "completed"
    env = cli_env(stack)

    from_kafka = await replay_json(env, workflow_id)
    assert from_kafka["workflow_id"] == workflow_id
    assert from_kafka["status"] == "completed"
    assert from_kafka["request"]["options"]["token_budget"] == 200_000
    assert [s["depends_on"] for s in from_kafka["plan"]["steps"]] == [[], [], ["s1", "s2"]]
    assert step_ids(from_kafka) == ["s1", "s2", "s3"]
    assert [s["status"] for s in from_kafka["steps"]] == ["completed"] * 3
    assert from_kafka["outcome"]["result"] == state["result"]
    assert from_kafka["events"][0]["type"] == "workflow.requested"
    assert from_kafka["problems"] == []

    # Every request the model server received for the workflow is one try of a call
    # the timeline shows, the planner's refused one included, and each step's in it.
    calls = all_calls(from_kafka)
    llm_calls = [call for call in calls if call["kind"] == "llm"]
    assert sum(len(call["tries"]) for call in llm_calls) == len(llm_admin.requests(contains=marker))
    [planning] = from_kafka["planning"]["calls"]
    assert [t["error"]["code"] if t["error"] else None for t in planning["tries"]] == [
        "llm_rate_limited",
        None,
    ]
    assert len(from_kafka["synthesis"]["calls"]) == 1
    per_step = agent_calls_per_step(llm_admin, state)
    for step in from_kafka["steps"]:
        step_calls = [c for a in step["attempts"] for i in a["iterations"] for c in i["calls"]]
        tries = sum(len(c["tries"]) for c in step_calls if c["kind"] == "llm")
        assert tries == per_step[step["step_id"]], step["step_id"]
    tools = {
        step["step_id"]: [
            (c["name"], c["outcome"], c["result"])
            for a in step["attempts"]
            for i in a["iterations"]
            for c in i["calls"]
            if c["kind"] == "tool"
        ]
        for step in from_kafka["steps"]
    }
    assert tools["s1"] == [("calculator", "ran", tools["s1"][0][2])]
    assert "42" in tools["s1"][0][2]
    assert "7" in tools["s2"][0][2]

    # The partition the command computes is where the producer put the events: every
    # message keyed by the workflow, read from every partition, sits on that one.
    security = kafka_client_security(stack.config)
    counts = await describe_partitions_async(
        stack.config.kafka_bootstrap, REPLAYED_TOPICS, security=security
    )
    async with asyncio.timeout(60):
        for topic in REPLAYED_TOPICS:
            holding = await partitions_holding(stack, workflow_id, topic, counts[topic])
            assert holding == {partition_of(workflow_id, range(counts[topic]))}, topic

    text = await tributary(env, "replay", workflow_id)
    assert text.status == 0, text.stderr
    for section in ("Request", "Planning", "Step s1", "Step s2", "Step s3", "Outcome"):
        assert f"\n{section}" in text.stdout
    assert "tool call #1 calculator" in text.stdout
    assert "failed: llm_rate_limited" in text.stdout

    export = tmp_path / "run.jsonl"
    exported = await tributary(env, "events", "export", workflow_id, "-o", str(export))
    assert exported.status == 0, exported.stderr
    assert len(export.read_text().splitlines()) == len(from_kafka["events"]) + 1

    # Nothing of the workflow left in Redis: Kafka alone still rebuilds it.
    await delete_from_redis(stack, workflow_id)
    assert await replay_json(env, workflow_id) == from_kafka

    offline = {**env, "TRIBUTARY_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    assert await replay_json(offline, "--from-file", str(export)) == from_kafka


async def test_an_unknown_workflow_and_a_kafka_away_are_clear_errors(stack: Stack) -> None:
    env = cli_env(stack)
    unknown = await tributary(env, "replay", "wf_that_never_was")
    assert unknown.status == 1
    assert "no events of workflow 'wf_that_never_was' on Kafka" in unknown.stderr

    away = await tributary(
        {**env, "TRIBUTARY_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, "replay", "x"
    )
    assert away.status == 1
    assert "cannot reach Kafka at 127.0.0.1:1" in away.stderr
