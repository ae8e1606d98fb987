"""The publisher clears the outbox notes of what Kafka acknowledged off the handlers' path.

``publish`` returns once the events are on Kafka; their notes are cleared later, many
per call to the store. A note left behind (Redis away, too many waiting, a shutdown)
is only ever a duplicate the planner's sweep sends, never a lost event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence

import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError

from tributary_planner.settings import MIN_UNSENT_GRACE_S, PlannerSettings
from tributary_shared.core.events import EventEnvelope
from tributary_shared.runtime.outbox import (
    CLEAR_INTERVAL_S,
    CLEAR_TIMEOUT_S,
    SentMarkingPublisher,
)
from tributary_shared.twins import MemoryWorkflowStore


class Kafka:
    """Acknowledges after a pause, as a broker does."""

    def __init__(self) -> None:
        self.sent: list[EventEnvelope] = []

    async def publish(self, events: Iterable[EventEnvelope]) -> None:
        await asyncio.sleep(0)
        self.sent.extend(events)


class CountingStore(MemoryWorkflowStore):
    """The store twin, counting ``mark_sent`` calls; it may fail or hang while told to."""

    def __init__(self) -> None:
        super().__init__()
        self.clears: list[int] = []
        """How many notes each ``mark_sent`` call cleared."""
        self.failures_left = 0
        self.hanging = False

    async def mark_sent(self, events: Sequence[EventEnvelope]) -> None:
        if self.hanging:
            await asyncio.Event().wait()
        if self.failures_left:
            self.failures_left -= 1
            raise ConnectionError("Redis is away")
        self.clears.append(len(events))
        await super().mark_sent(events)


def events(count: int, *, workflow_id: str = "wf_outbox") -> list[EventEnvelope]:
    return [EventEnvelope(type="step.started", workflow_id=workflow_id) for _ in range(count)]


async def noted(store: MemoryWorkflowStore, sent: Iterable[EventEnvelope]) -> set[str]:
    """Which of ``sent`` the outbox still holds."""
    ids = {event.event_id for event in sent}
    return {note.event_id for note in await store.unsent(time.time() + 60, limit=100_000)} & ids


async def written(store: MemoryWorkflowStore, count: int) -> list[EventEnvelope]:
    """Events noted as the store notes every write, before they are published."""
    batch = events(count)
    await store.track(batch)
    return batch


async def until_cleared(store: MemoryWorkflowStore, sent: list[EventEnvelope]) -> None:
    """Waits (up to 10 s) for the background clearing to clear every note of ``sent``."""
    for _ in range(1000):
        if not await noted(store, sent):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"still noted: {await noted(store, sent)}")


async def test_publish_returns_on_the_acknowledgement_without_waiting_for_the_store() -> None:
    store, kafka = CountingStore(), Kafka()
    store.hanging = True  # a round trip to this store never ends
    publisher = SentMarkingPublisher(kafka, store, flush_interval_s=60)
    sent = await written(store, 3)

    async with asyncio.timeout(2):
        await publisher.publish(sent)

    assert kafka.sent == sent
    assert store.clears == []
    assert await noted(store, sent) == {event.event_id for event in sent}
    assert publisher.pending == 3
    await publisher.close(timeout_s=0.1)


async def test_notes_are_cleared_by_a_flush() -> None:
    store = CountingStore()
    publisher = SentMarkingPublisher(Kafka(), store, flush_interval_s=None)
    sent = await written(store, 3)
    await publisher.publish(sent[:2])
    await publisher.publish(sent[2:])

    await publisher.flush()

    assert await noted(store, sent) == set()
    assert store.clears == [3]  # both publishes, one call
    assert publisher.pending == 0


async def test_many_publishes_are_cleared_in_the_background_by_few_calls() -> None:
    store = CountingStore()
    publisher = SentMarkingPublisher(Kafka(), store)
    sent = await written(store, 300)

    await asyncio.gather(*(publisher.publish([event]) for event in sent))
    await until_cleared(store, sent)

    assert sum(store.clears) == 300
    assert len(store.clears) <= 5, store.clears  # not one per publish
    await publisher.close()


async def test_a_full_batch_goes_at_once_and_no_call_clears_more_than_a_batch() -> None:
    store = CountingStore()
    publisher = SentMarkingPublisher(Kafka(), store, flush_interval_s=60, max_batch=100)
    sent = await written(store, 250)

    await publisher.publish(sent)
    await until_cleared(store, sent)  # long before the 60 s interval

    assert store.clears == [100, 100, 50]
    await publisher.close()


async def test_close_clears_what_waits_and_stops_the_background_task() -> None:
    running_before = _clearing_tasks()
    store = CountingStore()
    publisher = SentMarkingPublisher(Kafka(), store, flush_interval_s=60)
    sent = await written(store, 5)
    await publisher.publish(sent)
    assert await noted(store, sent)

    await publisher.close()

    assert await noted(store, sent) == set()
    assert publisher.pending == 0
    assert _clearing_tasks() <= running_before


async def test_close_gives_up_on_a_hanging_store_within_its_bound() -> None:
    store = CountingStore()
    publisher = SentMarkingPublisher(Kafka(), store, flush_interval_s=60)
    sent = await written(store, 5)
    await publisher.publish(sent)
    store.hanging = True

    started = time.monotonic()
    await publisher.close(timeout_s=0.2)

    assert time.monotonic() - started < 2
    assert await noted(store, sent) == {event.event_id for event in sent}  # the sweep's


async def test_a_failing_clear_fails_no_publish_and_its_notes_stay_for_the_next_try() -> None:
    store = CountingStore()
    store.failures_left = 1
    publisher = SentMarkingPublisher(Kafka(), store, flush_interval_s=None)
    sent = await written(store, 4)

    await publisher.publish(sent)
    await publisher.flush()  # Redis away: nothing cleared, nothing raised

    assert await noted(store, sent) == {event.event_id for event in sent}
    assert publisher.pending == 4
    await publisher.flush()  # back
    assert await noted(store, sent) == set()


async def test_the_background_clearing_tries_again_after_a_failure() -> None:
    store = CountingStore()
    store.failures_left = 2
    publisher = SentMarkingPublisher(Kafka(), store, clear_timeout_s=0.05)
    sent = await written(store, 4)

    await publisher.publish(sent)
    await until_cleared(store, sent)

    assert store.failures_left == 0
    assert store.clears == [4]
    await publisher.close()


async def test_what_waits_is_bounded_and_the_oldest_are_given_up_to_the_sweep() -> None:
    store = CountingStore()
    store.failures_left = 1_000  # Redis away for long
    publisher = SentMarkingPublisher(Kafka(), store, flush_interval_s=None, max_pending=10)
    sent = await written(store, 25)
    dropped_before = _dropped()

    for event in sent:
        await publisher.publish([event])
        await publisher.flush()

    assert publisher.pending == 10
    assert _dropped() - dropped_before == 15
    store.failures_left = 0
    await publisher.flush()
    # The newest were cleared; the oldest stay noted, so the sweep sends them again.
    assert await noted(store, sent) == {event.event_id for event in sent[:15]}


def test_the_sweeps_grace_stays_well_above_the_time_a_clear_takes() -> None:
    assert MIN_UNSENT_GRACE_S >= 20 * CLEAR_INTERVAL_S
    assert MIN_UNSENT_GRACE_S >= 2 * (CLEAR_INTERVAL_S + CLEAR_TIMEOUT_S)
    assert PlannerSettings().unsent_grace_s >= MIN_UNSENT_GRACE_S
    with pytest.raises(ValidationError):
        PlannerSettings(unsent_grace_s=CLEAR_INTERVAL_S)


def _dropped() -> float:
    return REGISTRY.get_sample_value("outbox_clears_dropped_total") or 0.0


def _clearing_tasks() -> set[asyncio.Task[object]]:
    return {t for t in asyncio.all_tasks() if t.get_name() == "outbox-clearing"}
