"""Poison messages across the real services, and the dead-letter CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.support.client import GatewayClient
from tests.support.stack import RunningServices
from tributary_devtools.admin.deadletters import REDRIVEN_HEADER
from tributary_scripted_llm import ScriptedLLMAdmin
from tributary_shared.core import topics

pytestmark = pytest.mark.integration


@pytest.fixture
async def producer(services: RunningServices) -> AsyncIterator[AIOKafkaProducer]:
    kafka = AIOKafkaProducer(bootstrap_servers=bootstrap(services))
    await kafka.start()
    yield kafka
    await kafka.stop()


def bootstrap(services: RunningServices) -> str:
    return f"127.0.0.1:{services.stack.config.kafka_port}"


def admin_cli(services: RunningServices, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tributary_devtools.admin",
            "--bootstrap",
            bootstrap(services),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def letters_for(services: RunningServices, key: str) -> list[dict[str, object]]:
    listed = admin_cli(services, "dead-letters", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    letters = [json.loads(line) for line in listed.stdout.splitlines()]
    return [letter for letter in letters if letter["key"] == key]


async def test_a_poison_message_is_dead_lettered_fails_its_workflow_and_blocks_nothing(
    gateway: GatewayClient,
    services: RunningServices,
    llm_admin: ScriptedLLMAdmin,
    producer: AIOKafkaProducer,
    marker: str,
) -> None:
    llm_admin.add_rule(contains=marker, has_tools=True, responses=[{"hang": True}])
    victim = await gateway.start(f"Stuck {marker}")
    await gateway.wait_for_status(victim, "running")
    # Garbage for the victim's key on the partition its steps use.
    await producer.send_and_wait(topics.STEPS.name, b"\xff\xfenot an event", key=victim.encode())

    events = await gateway.follow(victim)
    assert events[-1].type == "workflow.failed"
    error = (await gateway.get(victim))["error"]
    assert error["code"] == "processing_failed"
    assert error["message"] == (
        "tributary-agent-runner could not process a malformed event after 1 attempt(s) "
        "(event_malformed); it was dead-lettered"
    )

    # Other workflows keep moving.
    _, _, other = await gateway.run("What is 2 * 21?")
    assert other["status"] == "completed"

    [letter] = letters_for(services, victim)
    assert letter["consumer"] == "tributary-agent-runner"
    assert letter["topic"] == topics.STEPS.name
    assert letter["error_class"] == "internal"
    assert letter["attempts"] == 1
    assert letter["payload_text"] is None  # not UTF-8; kept intact in payload_b64


async def test_a_dead_letter_can_be_redriven_to_its_topic(
    services: RunningServices, producer: AIOKafkaProducer, marker: str
) -> None:
    key = f"wf_redrive_{marker[2:]}"
    payload = json.dumps({"type": "no.such.event", "note": marker}).encode()
    await producer.send_and_wait(topics.STEP_RESULTS.name, payload, key=key.encode())
    # Both groups reading the results topic (planner, synthesizer) dead-letter it.
    for _ in range(100):
        found = letters_for(services, key)
        if len(found) == 2:
            break
        await asyncio.sleep(0.2)
    assert sorted(str(f["consumer"]) for f in found) == [
        "tributary-planner",
        "tributary-synthesizer",
    ]
    letter = found[0]
    position = str(letter["position"])

    redriven = admin_cli(services, "dead-letters", "redrive", position)
    assert redriven.returncode == 0, redriven.stderr
    assert f"re-driven {position} -> {topics.STEP_RESULTS.name}" in redriven.stdout

    copies = await _messages_with_key(bootstrap(services), topics.STEP_RESULTS.name, key)
    assert [value for value, _ in copies] == [payload, payload]
    assert (REDRIVEN_HEADER, position.encode()) in copies[1][1]

    bad = admin_cli(services, "dead-letters", "redrive", "nonsense")
    assert bad.returncode == 2
    assert "not a dead-letter position" in bad.stderr


async def _messages_with_key(
    bootstrap_servers: str, topic: str, key: str
) -> list[tuple[bytes, list[tuple[str, bytes]]]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    found: list[tuple[bytes, list[tuple[str, bytes]]]] = []
    try:
        partitions = [TopicPartition(topic, p) for p in range(topics.STEP_RESULTS.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        idle = 0
        while idle < 3:
            batch = await consumer.getmany(timeout_ms=700)
            idle = 0 if batch else idle + 1
            for records in batch.values():
                found += [
                    (r.value or b"", list(r.headers or ()))
                    for r in records
                    if r.key == key.encode()
                ]
    finally:
        await consumer.stop()
    return found
