"""No handler runs without a limit: past its timeout it is cancelled and the attempt fails."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from tributary_shared.core.events import AnyEvent, WorkflowRequested, encode_event
from tributary_shared.runtime.kafka.consumer import ConsumerConfig, EventConsumer
from tributary_shared.runtime.kafka.deadletter import DeadLetter

TP = TopicPartition("workflow.events", 0)


def record_of(event: WorkflowRequested) -> ConsumerRecord[Any, Any]:
    value = encode_event(event)
    return ConsumerRecord(
        topic=TP.topic,
        partition=TP.partition,
        offset=3,
        timestamp=0,
        timestamp_type=0,
        key=event.workflow_id.encode(),
        value=value,
        checksum=None,
        serialized_key_size=len(event.workflow_id),
        serialized_value_size=len(value),
        headers=(),
    )


class HangingHandler:
    """Hangs on every call (a tool that never answers), or only on the first ``hangs``."""

    def __init__(self, hangs: int) -> None:
        self.hangs = hangs
        self.calls = 0
        self.cancelled = 0

    async def __call__(self, _event: AnyEvent) -> None:
        self.calls += 1
        if self.calls > self.hangs:
            return
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


def consumer(handler: HangingHandler, letters: list[DeadLetter]) -> EventConsumer:
    async def publish_raw(_topic: str, value: bytes, _k: bytes | None, _h: dict[str, str]) -> None:
        letters.append(DeadLetter.model_validate_json(value))

    config = ConsumerConfig(
        group_id="agent-runner",
        topics=(TP.topic,),
        bootstrap_servers="127.0.0.1:1",
        client_id="test",
        attempts=2,
        backoff_base_s=0,
        backoff_max_s=0,
        handler_timeout_s=0.05,
    )
    return EventConsumer(config, handler=handler, publish_raw=publish_raw)


async def test_a_hanging_handler_is_cancelled_and_its_message_dead_lettered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler, letters = HangingHandler(hangs=10**9), list[DeadLetter]()
    event = WorkflowRequested(workflow_id="wf_hangs", task="t")
    with caplog.at_level(logging.ERROR):
        await asyncio.wait_for(consumer(handler, letters)._process(TP, record_of(event)), 5)
    # Each attempt was cut off at the limit, not left running.
    assert (handler.calls, handler.cancelled) == (2, 2)
    [letter] = letters
    assert (letter.error_code, letter.error_class, letter.attempts) == (
        "handler_timeout",
        "transient",
        2,
    )
    timeouts = [r for r in caplog.records if "took longer than 0.05s" in r.getMessage()]
    assert len(timeouts) == 2
    assert all(r.levelno == logging.ERROR for r in timeouts)


async def test_a_handler_that_hung_once_succeeds_on_the_next_attempt() -> None:
    handler, letters = HangingHandler(hangs=1), list[DeadLetter]()
    event = WorkflowRequested(workflow_id="wf_hangs_once", task="t")
    await asyncio.wait_for(consumer(handler, letters)._process(TP, record_of(event)), 5)
    assert (handler.calls, handler.cancelled) == (2, 1)
    assert letters == []
