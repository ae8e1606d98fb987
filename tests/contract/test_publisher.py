"""The publisher contract: each event on its home topic, keyed by workflow, in order.

Runs against the in-memory twin and, unchanged, against the Kafka publisher on
the real broker, read back with a plain consumer.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from tributary_devstack.stack import Stack
from tributary_shared.core.events import (
    EventEnvelope,
    PlanCreated,
    PlannedStep,
    StepDispatched,
    StepStarted,
    WorkflowRequested,
    decode_event,
    home_topic,
)
from tributary_shared.core.ports import EventPublisher
from tributary_shared.core.topics import ALL_TOPICS
from tributary_shared.runtime.kafka.publisher import KafkaEventPublisher, make_broker
from tributary_shared.twins import MemoryPublisher

ReadBack = Callable[[str, str, int], Awaitable[list[tuple[bytes | None, EventEnvelope]]]]
"""(topic, workflow id, how many) -> the workflow's (key, event) pairs on the topic, in order."""


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.integration)])
async def publishing(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[EventPublisher, ReadBack]]:
    if request.param == "memory":
        twin = MemoryPublisher()

        async def read_memory(
            topic: str, workflow_id: str, count: int
        ) -> list[tuple[bytes | None, EventEnvelope]]:
            events = [e for e in twin.topics.get(topic, []) if e.workflow_id == workflow_id]
            return [(workflow_id.encode(), e) for e in events]

        yield twin, read_memory
        return
    stack: Stack = request.getfixturevalue("stack")
    bootstrap = f"127.0.0.1:{stack.config.kafka_port}"
    broker = make_broker(bootstrap, client_id="contract-publisher")
    await broker.start()
    try:
        yield KafkaEventPublisher(broker), _kafka_reader(bootstrap)
    finally:
        await broker.stop()


def _kafka_reader(bootstrap: str) -> ReadBack:
    async def read_kafka(
        topic: str, workflow_id: str, count: int
    ) -> list[tuple[bytes | None, EventEnvelope]]:
        # No group: the consumer reads the one partition the key maps to (as the
        # producer's default partitioner picks it), from the start; the whole topic
        # holds every earlier test's events.
        key = workflow_id.encode()
        partitions = list(range(next(t.partitions for t in ALL_TOPICS if t.name == topic)))
        partition = TopicPartition(topic, DefaultPartitioner()(key, partitions, partitions))
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        try:
            found: list[tuple[bytes | None, EventEnvelope]] = []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while len(found) < count and loop.time() < deadline:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        if record.key == key:
                            found.append((record.key, decode_event(record.value)))
            return found
        finally:
            await consumer.stop()

    return read_kafka


async def test_each_event_lands_on_its_home_topic_in_order(
    publishing: tuple[EventPublisher, ReadBack],
) -> None:
    publisher, read_back = publishing
    workflow_id = f"wf_{uuid.uuid4().hex}"
    step = PlannedStep(step_id="s1", index=0, title="t", instruction="i")
    request = WorkflowRequested(workflow_id=workflow_id, task="t")
    plan = PlanCreated(workflow_id=workflow_id, steps=(step,))
    dispatched = StepDispatched(workflow_id=workflow_id, step=step, task="t")
    started = [StepStarted(workflow_id=workflow_id, step_id="s1", attempt=n) for n in (1, 2, 3)]
    await publisher.publish([request, plan, dispatched])
    await publisher.publish(started)

    for topic, expected in (
        (home_topic(request), [request]),
        (home_topic(dispatched), [dispatched]),
        (home_topic(plan), [plan, *started]),
    ):
        got = await read_back(topic, workflow_id, len(expected))
        assert [event for _, event in got] == expected, topic
        assert {key for key, _ in got} == {workflow_id.encode()}
