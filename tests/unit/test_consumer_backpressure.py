"""Back-pressure holds whatever the assignment history: in-flight cap and partition window.

The consumer runtime runs on a fake aiokafka consumer (tests/support/fake_kafka.py)
that, like aiokafka, hands over fresh unpaused partitions on every assignment.
What a user relies on is counted where it happens: handlers running at once
(LLM calls at once, in production), records started from a partition while
one of its records is stuck, and that every record is handled in the end.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiokafka import TopicPartition

from tests.support.fake_kafka import FakeKafkaConsumer, request_log
from tributary_shared.core.events import AnyEvent
from tributary_shared.runtime.kafka.consumer import ConsumerConfig, EventConsumer

TOPIC = "workflow.events"
P0, P1, P2, P3 = (TopicPartition(TOPIC, n) for n in range(4))


class Handlers:
    """Handlers that block until released (or only the named workflows block)."""

    def __init__(self, *, stuck: Callable[[str], bool]) -> None:
        self.stuck = stuck
        self.release = asyncio.Event()
        self.running = 0
        self.peak = 0
        self.handled: list[str] = []

    async def handle(self, event: AnyEvent) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            if self.stuck(event.workflow_id):
                await self.release.wait()
            else:
                await asyncio.sleep(0)
            self.handled.append(event.workflow_id)
        finally:
            self.running -= 1


async def _never(*_args: Any) -> None:
    raise AssertionError("nothing is dead-lettered here")


def runtime(fake: FakeKafkaConsumer, handlers: Handlers, **overrides: Any) -> EventConsumer:
    config = ConsumerConfig(
        group_id="agent-runner",
        topics=(TOPIC,),
        bootstrap_servers="fake:9092",
        client_id="test",
        commit_interval_s=0.01,
        shutdown_grace_s=0,
        revoke_drain_s=0.0,  # rebalances here hand stuck work over at once
    )
    return EventConsumer(
        dataclasses.replace(config, **overrides),
        handler=handlers.handle,
        publish_raw=_never,
        client=lambda _config: fake,
    )


async def eventually(check: Callable[[], bool], *, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def settle(fake: FakeKafkaConsumer, polls: int = 30) -> None:
    """Let the poll loop run ``polls`` more fetches."""
    target = fake.fetches + polls
    await eventually(lambda: fake.fetches >= target)


@pytest.fixture
async def running() -> AsyncIterator[list[EventConsumer]]:
    started: list[EventConsumer] = []
    yield started
    for consumer in started:
        await consumer.stop()


def all_ids(fake: FakeKafkaConsumer, *partitions: TopicPartition) -> set[str]:
    return {r.key.decode() for tp in partitions for r in fake.logs[tp]}


async def test_the_in_flight_cap_holds_through_rebalances(
    running: list[EventConsumer],
) -> None:
    fake = FakeKafkaConsumer({tp: request_log(tp, 200) for tp in (P0, P1, P2, P3)})
    handlers = Handlers(stuck=lambda _id: True)
    consumer = runtime(fake, handlers, max_in_flight=8)
    running.append(consumer)
    await consumer.start()
    await eventually(lambda: handlers.running == 8)

    # Scale events: each rebalance hands over fresh, unpaused partitions.
    for assigned in ({P0, P1}, {P0, P1, P2, P3}, {P2}, {P1, P3}, {P0, P1, P2, P3}):
        await fake.rebalance(assigned)
        await settle(fake)
        assert consumer.in_flight == 8
        assert fake.paused() == fake.assignment()  # fetching nothing while full
    assert handlers.peak == 8

    handlers.release.set()
    await eventually(lambda: set(handlers.handled) == all_ids(fake, P0, P1, P2, P3))
    assert handlers.peak == 8
    await eventually(lambda: fake.committed == dict.fromkeys((P0, P1, P2, P3), 200))


async def test_records_fetched_in_a_rebalance_past_the_cap_wait_and_are_not_lost(
    running: list[EventConsumer],
) -> None:
    fake = FakeKafkaConsumer({P0: request_log(P0, 50), P1: request_log(P1, 50)})
    handlers = Handlers(stuck=lambda _id: True)
    consumer = runtime(fake, handlers, max_in_flight=4)
    running.append(consumer)
    await consumer.start()
    await eventually(lambda: handlers.running == 4)

    # The fetch returns records of a partition assigned after the loop paused
    # everything, before the listener could pause it.
    fake.rebalance_during_next_fetch({P0, P1}, records_before_listener=True)
    await settle(fake)
    assert consumer.in_flight == 4
    assert handlers.peak == 4

    handlers.release.set()
    await eventually(lambda: set(handlers.handled) == all_ids(fake, P0, P1))
    await eventually(lambda: fake.committed == {P0: 50, P1: 50})


async def test_a_stuck_record_pauses_only_its_partition_once_its_window_is_full(
    running: list[EventConsumer],
) -> None:
    fake = FakeKafkaConsumer({P0: request_log(P0, 300), P1: request_log(P1, 300)})
    stuck_id = "wf_0_0"
    handlers = Handlers(stuck=lambda workflow_id: workflow_id == stuck_id)
    consumer = runtime(fake, handlers, max_in_flight=1000, max_uncommitted_per_partition=20)
    running.append(consumer)
    await consumer.start()

    # The other partition flows on...
    await eventually(lambda: all_ids(fake, P1) <= set(handlers.handled))
    await settle(fake)
    # ...while P0 took on no more than its window: the stuck record and 19 after it.
    started_from_p0 = [h for h in handlers.handled if h.startswith("wf_0_")]
    assert len(started_from_p0) == 19
    assert fake.paused() == {P0}
    assert fake.committed.get(P0, 0) == 0  # nothing past the stuck record is committed

    # The window also holds across a rebalance.
    await fake.rebalance({P0, P1})
    await settle(fake)
    assert len([h for h in handlers.handled if h.startswith("wf_0_")]) <= 2 * 19

    handlers.release.set()
    await eventually(lambda: all_ids(fake, P0) <= set(handlers.handled))
    await eventually(lambda: fake.committed == {P0: 300, P1: 300})
