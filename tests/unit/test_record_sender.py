"""A call record costs its caller one store round trip; Kafka gets it behind the call.

The recording path as the workers assemble it (``runtime.worker.workflow_llms``
over redacting ports, the outbox's ``SentMarkingPublisher``, a ``RecordSender``),
on the store twin behind a spy that counts the store calls, and a publisher a
test holds back or makes fail. What the guarantees protect is checked where it
lands: the workflow's log, the outbox's notes, what the publisher was given.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import pytest

from tributary_shared.core.completions import Completion, ToolCall
from tributary_shared.core.events import (
    EventEnvelope,
    ToolCalled,
    WorkflowCancelled,
    WorkflowRequested,
)
from tributary_shared.core.machine import cancel
from tributary_shared.core.ports import Ports
from tributary_shared.core.recording import resolve
from tributary_shared.core.redaction import Redactor
from tributary_shared.runtime.call_recorder import CallRecorder
from tributary_shared.runtime.outbox import SentMarkingPublisher, send_unsent
from tributary_shared.runtime.record_sender import RecordSender
from tributary_shared.runtime.redaction import redacting
from tributary_shared.runtime.settings import BudgetSettings, LLMSettings
from tributary_shared.runtime.worker import workflow_llms
from tributary_shared.twins import (
    MemoryBudgetLedger,
    MemoryCallHistory,
    MemoryCancellationSignal,
    MemoryEffectLedger,
    MemoryWorkflowStore,
)

WORKFLOW = "wf_records"


class CountingStore:
    """The store twin, counting the calls made to it (each one a Redis round trip)."""

    def __init__(self, store: MemoryWorkflowStore) -> None:
        self.store = store
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return await method(*args, **kwargs)

        return counted


class Kafka:
    """A publisher a test can hold back (``open``) or make fail (``failing``)."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()
        self.failing = False
        self.batches: list[list[EventEnvelope]] = []
        self.publishing = asyncio.Event()
        """Set once a publish has begun."""

    async def publish(self, events: Iterable[EventEnvelope]) -> None:
        batch = list(events)
        self.publishing.set()
        await self.open.wait()
        if self.failing:
            raise ConnectionError("Kafka is away")
        self.batches.append(batch)

    @property
    def published(self) -> list[EventEnvelope]:
        return [event for batch in self.batches for event in batch]


class NoModel:
    async def complete(self, **_: Any) -> Completion:
        raise AssertionError("no model call is made here")

    async def close(self) -> None:
        pass


@dataclass
class Recording:
    store: MemoryWorkflowStore
    spy: CountingStore
    kafka: Kafka
    outbox: SentMarkingPublisher
    sender: RecordSender
    recorder: CallRecorder

    async def tool_call(self, number: int, result: str = "42") -> None:
        """Records one tool call; fails, rather than hangs, if the call waits for Kafka."""
        async with asyncio.timeout(10):
            await self._tool_call(number, result)

    async def _tool_call(self, number: int, result: str) -> None:
        await self.recorder.tool_call(
            iteration=1,
            call=ToolCall(id=f"call_{number}", name="lookup", arguments=f'{{"n": {number}}}'),
            result=result,
            failed=False,
            outcome="ran",
            started_at=time.time(),
        )

    async def noted(self) -> set[str]:
        return {n.event_id for n in await self.store.unsent(time.time() + 1)}

    async def logged(self) -> list[str]:
        return [entry.type for entry in await self.store.read_log(WORKFLOW, count=1000)]


async def recording(*, capacity: int = 256) -> Recording:
    store = MemoryWorkflowStore()
    await store.create_workflow(
        WorkflowRequested(workflow_id=WORKFLOW, task="t"), deadline_at=time.time() + 600
    )
    await store.forget_unsent(await store.unsent(time.time() + 1))  # the request went out
    spy = CountingStore(store)
    kafka = Kafka()
    # Notes of what Kafka took are cleared on ``flush`` only: a test sees a fixed outbox.
    outbox = SentMarkingPublisher(kafka, spy, flush_interval_s=None)
    ports = redacting(
        Ports(
            store=spy,
            budgets=MemoryBudgetLedger(store),
            publisher=outbox,
            cancellations=MemoryCancellationSignal(),
            calls=MemoryCallHistory(),
            effects=MemoryEffectLedger(),
        ),
        Redactor(),
    )
    sender = RecordSender(ports.publisher, capacity=capacity)
    llms = workflow_llms(
        ports,
        NoModel(),
        llm_settings=LLMSettings(),
        budget_settings=BudgetSettings(),
        publish_records=sender.send,
    )
    recorder = llms.for_workflow(WORKFLOW, "default", deadline_at=None, step_id="s1").recorder
    assert recorder is not None
    return Recording(store, spy, kafka, outbox, sender, recorder)


@pytest.fixture
async def rec() -> AsyncIterator[Recording]:
    made = await recording()
    yield made
    made.kafka.open.set()
    await made.sender.close(grace_s=1)


async def test_a_record_is_logged_in_one_store_round_trip_and_published_behind_the_call(
    rec: Recording,
) -> None:
    rec.kafka.open.clear()  # Kafka is slow: the call must not wait for it

    await rec.tool_call(1)

    assert rec.spy.calls == ["write_notices"]
    assert await rec.logged() == ["workflow.requested", "tool.called"]
    [record] = [e for e in await rec.store.read_log(WORKFLOW) if e.type == "tool.called"]
    assert rec.kafka.published == []
    rec.kafka.open.set()
    await rec.sender.flush()
    [published] = rec.kafka.published
    assert published.model_dump_json() == record.event_json
    await rec.outbox.flush()
    assert published.event_id not in await rec.noted()  # cleared, behind the call


async def test_a_record_too_large_for_one_message_is_logged_whole_in_one_round_trip(
    rec: Recording,
) -> None:
    page = "a long page " * 40_000  # ~480 kB: over the inline limit

    await rec.tool_call(1, result=page)

    assert rec.spy.calls == ["write_notices"]
    logged = await rec.logged()
    assert logged[0] == "workflow.requested"
    assert logged[-1] == "tool.called"
    assert set(logged[1:-1]) == {"call.payload"}  # the parts first, then the record
    await rec.sender.flush()
    assert [e.type for e in rec.kafka.published] == logged[1:]
    [whole] = resolve(rec.kafka.published)
    assert isinstance(whole, ToolCalled)
    assert whole.body is not None
    assert whole.body.result == page


async def test_records_reach_kafka_in_the_order_they_were_written(rec: Recording) -> None:
    rec.kafka.open.clear()
    await rec.tool_call(0)
    await rec.kafka.publishing.wait()  # the first is on its way; the others queue up
    for number in range(1, 6):
        await rec.tool_call(number)
    rec.kafka.open.set()
    await rec.sender.flush()

    written = [entry.type for entry in await rec.store.read_log(WORKFLOW)][1:]
    assert written == ["tool.called"] * 6
    log_ids = [
        EventEnvelope.model_validate_json(entry.event_json).event_id
        for entry in await rec.store.read_log(WORKFLOW)
    ][1:]
    assert [e.event_id for e in rec.kafka.published] == log_ids
    assert [len(batch) for batch in rec.kafka.batches] == [1, 5]  # queued ones go together


async def test_a_failed_publish_leaves_the_record_to_the_outbox_and_the_call_stands(
    rec: Recording,
) -> None:
    rec.kafka.failing = True

    await rec.tool_call(1)  # returns: the record is durable

    await rec.sender.flush()
    assert rec.kafka.published == []
    [entry] = [e for e in await rec.store.read_log(WORKFLOW) if e.type == "tool.called"]
    record = EventEnvelope.model_validate_json(entry.event_json)
    assert record.event_id in await rec.noted()
    # The planner's sweep publishes it from the log once Kafka is back: nothing is lost.
    rec.kafka.failing = False
    await send_unsent(rec.store, rec.kafka, await rec.store.unsent(time.time() + 1))
    assert [e.event_id for e in rec.kafka.published] == [record.event_id]


async def test_a_full_queue_makes_the_caller_wait_for_room() -> None:
    rec = await recording(capacity=2)
    rec.kafka.open.clear()
    await rec.tool_call(0)
    await rec.kafka.publishing.wait()  # taken from the queue, waiting for Kafka
    await rec.tool_call(1)
    await rec.tool_call(2)  # the queue is full now

    fourth = asyncio.create_task(rec.tool_call(3))
    done, _ = await asyncio.wait({fourth}, timeout=0.2)
    assert not done  # waits for room, holding its record in memory nowhere else
    assert await rec.logged() == ["workflow.requested", *["tool.called"] * 4]

    rec.kafka.open.set()
    await fourth
    await rec.sender.flush()
    assert len(rec.kafka.published) == 4  # none dropped
    await rec.sender.close()


async def test_closing_publishes_what_is_queued() -> None:
    rec = await recording()
    rec.kafka.open.clear()
    for number in range(3):
        await rec.tool_call(number)
    await rec.kafka.publishing.wait()

    rec.kafka.open.set()
    await rec.sender.close(grace_s=5)

    assert len(rec.kafka.published) == 3
    await rec.outbox.flush()
    assert await rec.noted() == set()


async def test_what_closing_could_not_publish_in_time_stays_noted_for_the_outbox() -> None:
    rec = await recording()
    rec.kafka.open.clear()  # Kafka away through the shutdown
    for number in range(3):
        await rec.tool_call(number)

    await asyncio.wait_for(rec.sender.close(grace_s=0.1), timeout=5)
    await rec.tool_call(9)  # after the close: logged and noted, left to the outbox

    assert rec.kafka.published == []
    assert len(await rec.noted()) == 4
    assert await rec.logged() == ["workflow.requested", *["tool.called"] * 4]


async def test_no_record_is_written_or_published_once_the_workflow_has_ended(
    rec: Recording,
) -> None:
    await rec.store.apply(cancel(WorkflowCancelled(workflow_id=WORKFLOW)))

    await rec.tool_call(1)
    await rec.sender.flush()

    assert await rec.logged() == ["workflow.requested", "workflow.cancelled"]
    assert rec.kafka.published == []
