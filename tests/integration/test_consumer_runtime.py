"""The consumer runtime on a real broker: poison messages, dead letters, parallelism, commits."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tributary_devstack.stack import Stack
from tributary_shared.core.events import AnyEvent, WorkflowRequested, encode_event
from tributary_shared.core.topics import DEAD_LETTERS
from tributary_shared.runtime.kafka.consumer import ConsumerConfig, EventConsumer
from tributary_shared.runtime.kafka.deadletter import DeadLetter

pytestmark = pytest.mark.integration


@dataclass
class Harness:
    bootstrap: str
    topic: str
    producer: AIOKafkaProducer
    dead_letter_hook_calls: list[tuple[AnyEvent | None, DeadLetter]] = field(default_factory=list)

    async def send(self, value: bytes, key: str) -> int:
        meta = await self.producer.send_and_wait(self.topic, value, key=key.encode())
        return int(meta.offset)

    async def publish_raw(
        self, topic: str, value: bytes, key: bytes | None, headers: dict[str, str]
    ) -> None:
        await self.producer.send_and_wait(
            topic, value, key=key, headers=[(k, v.encode()) for k, v in headers.items()]
        )

    def consumer(
        self, handler: Callable[[AnyEvent], Awaitable[None]], **overrides: object
    ) -> EventConsumer:
        async def hook(event: AnyEvent | None, letter: DeadLetter) -> None:
            self.dead_letter_hook_calls.append((event, letter))

        config = ConsumerConfig(
            group_id=f"test-{uuid.uuid4().hex[:8]}",
            topics=(self.topic,),
            bootstrap_servers=self.bootstrap,
            client_id="test",
            backoff_base_s=0.05,
            backoff_max_s=0.1,
            commit_interval_s=0.1,
            shutdown_grace_s=2,
        )
        config = dataclasses.replace(config, **overrides)  # type: ignore[arg-type]
        return EventConsumer(
            config, handler=handler, publish_raw=self.publish_raw, on_dead_letter=hook
        )

    async def committed(self, group_id: str) -> int | None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(group_id)
        finally:
            await admin.close()
        meta = offsets.get(TopicPartition(self.topic, 0))
        return None if meta is None else int(meta.offset)


@pytest.fixture
async def harness(stack: Stack) -> AsyncIterator[Harness]:
    bootstrap = f"127.0.0.1:{stack.config.kafka_port}"
    topic = f"test.runtime.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    yield Harness(bootstrap=bootstrap, topic=topic, producer=producer)
    await producer.stop()


def request(workflow_id: str | None = None) -> WorkflowRequested:
    return WorkflowRequested(workflow_id=workflow_id or f"wf_{uuid.uuid4().hex}", task="t")


async def dead_letters_for(harness: Harness, key: str) -> list[DeadLetter]:
    consumer = AIOKafkaConsumer(
        DEAD_LETTERS.name,
        bootstrap_servers=harness.bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    found: list[DeadLetter] = []
    try:
        idle = 0
        while idle < 3:
            batch = await consumer.getmany(timeout_ms=500)
            idle = 0 if batch else idle + 1
            for records in batch.values():
                found += [
                    DeadLetter.model_validate_json(r.value)
                    for r in records
                    if r.key == key.encode()
                ]
    finally:
        await consumer.stop()
    return found


async def eventually(check: Callable[[], bool], *, within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_a_poison_message_is_dead_lettered_and_the_partition_moves_on(
    harness: Harness,
) -> None:
    seen: list[str] = []

    async def handler(event: AnyEvent) -> None:
        seen.append(event.workflow_id)

    poison_key = f"wf_{uuid.uuid4().hex}"
    await harness.send(b'{"type": "no.such.event"}', key=poison_key)
    good = request()
    last = await harness.send(encode_event(good), key=good.workflow_id)

    consumer = harness.consumer(handler)
    await consumer.start()
    try:
        await eventually(lambda: seen == [good.workflow_id])
        await eventually(lambda: len(harness.dead_letter_hook_calls) == 1)
    finally:
        await consumer.stop()

    [letter] = await dead_letters_for(harness, poison_key)
    assert letter.error_class == "internal"
    assert letter.error_code == "event_malformed"
    assert letter.attempts == 1
    assert letter.payload() == b'{"type": "no.such.event"}'
    assert letter.topic == harness.topic
    assert await harness.committed(consumer._config.group_id) == last + 1


async def test_a_handler_that_keeps_failing_is_retried_then_dead_lettered(
    harness: Harness,
) -> None:
    attempts: list[int] = []

    async def handler(event: AnyEvent) -> None:
        attempts.append(1)
        raise RuntimeError("redis is down")

    event = request()
    await harness.send(encode_event(event), key=event.workflow_id)
    consumer = harness.consumer(handler, attempts=3)
    await consumer.start()
    try:
        await eventually(lambda: len(harness.dead_letter_hook_calls) == 1)
    finally:
        await consumer.stop()
    assert len(attempts) == 3
    hooked_event, letter = harness.dead_letter_hook_calls[0]
    assert hooked_event == event
    assert letter.attempts == 3
    assert letter.error_code == "handler_failed"
    assert json.loads(letter.payload())["workflow_id"] == event.workflow_id


async def test_one_partition_runs_many_records_at_once_and_commits_only_the_finished_prefix(
    harness: Harness,
) -> None:
    release_first = asyncio.Event()
    running = 0
    peak = 0
    done: list[str] = []
    events = [request() for _ in range(8)]

    async def handler(event: AnyEvent) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if event.workflow_id == events[0].workflow_id:
            await release_first.wait()  # one slow LLM call...
        else:
            await asyncio.sleep(0.2)
        running -= 1
        done.append(event.workflow_id)

    offsets = [await harness.send(encode_event(e), key=e.workflow_id) for e in events]
    consumer = harness.consumer(handler, max_in_flight=16)
    await consumer.start()
    group = consumer._config.group_id
    try:
        # ...does not hold up the other workflows on its partition,
        await eventually(lambda: len(done) == 7)
        assert peak >= 4
        # but nothing past it is committed while it runs: a crash now redelivers it.
        await asyncio.sleep(0.5)
        assert await harness.committed(group) in (None, offsets[0])
        release_first.set()
        await eventually(lambda: len(done) == 8)
        await asyncio.sleep(0.5)
        assert await harness.committed(group) == offsets[-1] + 1
    finally:
        release_first.set()
        await consumer.stop()


async def test_one_workflows_events_are_handled_in_order(harness: Harness) -> None:
    workflow_id = f"wf_{uuid.uuid4().hex}"
    events = [request(workflow_id) for _ in range(5)]
    order: list[str] = []

    async def handler(event: AnyEvent) -> None:
        await asyncio.sleep(0.2 if event.event_id == events[0].event_id else 0)
        order.append(event.event_id)

    for event in events:
        await harness.send(encode_event(event), key=workflow_id)
    consumer = harness.consumer(handler)
    await consumer.start()
    try:
        await eventually(lambda: len(order) == 5)
    finally:
        await consumer.stop()
    assert order == [e.event_id for e in events]


async def test_work_cut_off_at_shutdown_is_not_committed(harness: Harness) -> None:
    started = asyncio.Event()

    async def handler(event: AnyEvent) -> None:
        started.set()
        await asyncio.sleep(60)  # far past the grace period

    event = request()
    offset = await harness.send(encode_event(event), key=event.workflow_id)
    consumer = harness.consumer(handler, shutdown_grace_s=0.2)
    await consumer.start()
    await asyncio.wait_for(started.wait(), 20)
    await consumer.stop()
    assert await harness.committed(consumer._config.group_id) in (None, offset)


class Saturating:
    """Handlers that block until released, counting how many run at once."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.running = 0
        self.peak = 0
        self.handled: set[str] = set()

    async def handle(self, event: AnyEvent) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await self.release.wait()
            self.handled.add(event.workflow_id)
        finally:
            self.running -= 1


async def test_the_in_flight_cap_holds_when_a_second_replica_joins(harness: Harness) -> None:
    # Four partitions, far more records than the caps: the first replica is
    # saturated when the second joins, and the rebalance hands both of them
    # fresh, unpaused partitions.
    topic = f"test.rebalance.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=harness.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    finally:
        await admin.close()
    harness = dataclasses.replace(harness, topic=topic)
    events = [request() for _ in range(400)]
    for n, event in enumerate(events):
        await harness.producer.send(
            topic, encode_event(event), key=event.workflow_id.encode(), partition=n % 4
        )
    await harness.producer.flush()

    group = f"test-{uuid.uuid4().hex[:8]}"
    first, second = Saturating(), Saturating()
    one = harness.consumer(first.handle, group_id=group, max_in_flight=4)
    two = harness.consumer(second.handle, group_id=group, max_in_flight=4)
    await one.start()
    try:
        await eventually(lambda: first.running == 4, within=30)
        await two.start()
        try:
            await eventually(lambda: second.running == 4, within=30)
            # Long enough for many fetches on both sides after the rebalance.
            await asyncio.sleep(3)
            assert (first.peak, second.peak) == (4, 4)
            assert (one.in_flight, two.in_flight) == (4, 4)
            first.release.set()
            second.release.set()
            expected = {e.workflow_id for e in events}
            await eventually(lambda: first.handled | second.handled == expected, within=60)
            assert (first.peak, second.peak) == (4, 4)
        finally:
            first.release.set()
            second.release.set()
            await two.stop()
    finally:
        await one.stop()
