"""Revoked partitions are handed over deliberately: drained briefly, never cancelled blindly.

What finishes within the drain is committed before the group moves on (so it
is not delivered again); a handler still running after it keeps running, owned
by its step lease (the agent-runner's), and its offset is left for the new owner.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.support.fake_kafka import FakeKafkaConsumer, request_log
from tests.unit.test_consumer_backpressure import P0, Handlers, eventually, runtime
from tributary_shared.core.events import AnyEvent
from tributary_shared.runtime.kafka.consumer import EventConsumer


class Watched(Handlers):
    """Handlers that also note being cancelled."""

    def __init__(self) -> None:
        super().__init__(stuck=lambda _id: True)
        self.cancelled = 0

    async def handle(self, event: AnyEvent) -> None:
        try:
            await super().handle(event)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


@pytest.fixture
async def running() -> AsyncIterator[list[EventConsumer]]:
    started: list[EventConsumer] = []
    yield started
    for consumer in started:
        await consumer.stop()


async def test_work_that_finishes_during_the_drain_is_committed_before_handover(
    running: list[EventConsumer],
) -> None:
    fake = FakeKafkaConsumer({P0: request_log(P0, 1)})
    handlers = Watched()
    consumer = runtime(fake, handlers, revoke_drain_s=5.0)
    running.append(consumer)
    await consumer.start()
    await eventually(lambda: handlers.running == 1)

    rebalance = asyncio.create_task(fake.rebalance({P0}))
    await asyncio.sleep(0.05)
    assert not rebalance.done()  # the revocation waits for the handler...
    handlers.release.set()
    await asyncio.wait_for(rebalance, timeout=5)

    assert fake.committed == {P0: 1}  # ...and commits it before the group moves on
    await asyncio.sleep(0.05)
    assert len(handlers.handled) == 1  # so it is not delivered again
    assert handlers.cancelled == 0


async def test_a_long_handler_is_not_cancelled_and_its_offset_is_left_to_the_new_owner(
    running: list[EventConsumer],
) -> None:
    fake = FakeKafkaConsumer({P0: request_log(P0, 1)})
    handlers = Watched()
    consumer = runtime(fake, handlers, revoke_drain_s=0.05)
    running.append(consumer)
    await consumer.start()
    await eventually(lambda: handlers.running == 1)

    await asyncio.wait_for(fake.rebalance({P0}), timeout=5)  # the drain gives up quickly

    assert handlers.cancelled == 0
    assert fake.committed.get(P0, 0) == 0
    assert handlers.running >= 1  # still at work, under its lease in production
    handlers.release.set()
    await eventually(lambda: fake.committed.get(P0) == 1)
    assert handlers.cancelled == 0
