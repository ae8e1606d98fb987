"""A dead letter is published even when Kafka refuses it at first; never dropped."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka import errors as kafka_errors
from aiokafka.structs import ConsumerRecord

from tributary_shared.core.events import AnyEvent
from tributary_shared.core.topics import DEAD_LETTERS
from tributary_shared.runtime.kafka.consumer import ConsumerConfig, EventConsumer
from tributary_shared.runtime.kafka.deadletter import DeadLetter

TP = TopicPartition("workflow.events", 2)


def poison_record() -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(
        topic=TP.topic,
        partition=TP.partition,
        offset=41,
        timestamp=0,
        timestamp_type=0,
        key=b"wf-1",
        value=b"not an event",
        checksum=None,
        serialized_key_size=4,
        serialized_value_size=12,
        headers=(),
    )


class Broker:
    """Refuses the first ``refusals`` publishes, as a broker that is restarting would."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.attempts = 0
        self.published: list[tuple[str, bytes, bytes | None]] = []

    async def publish_raw(
        self, topic: str, value: bytes, key: bytes | None, headers: dict[str, str]
    ) -> None:
        self.attempts += 1
        if self.attempts <= self.refusals:
            raise kafka_errors.KafkaConnectionError("broker away")
        self.published.append((topic, value, key))


def consumer(broker: Broker, hooked: list[DeadLetter]) -> EventConsumer:
    async def on_dead_letter(_event: AnyEvent | None, letter: DeadLetter) -> None:
        hooked.append(letter)

    async def handler(_event: AnyEvent) -> None:
        raise AssertionError("a poison message never reaches the handler")

    config = ConsumerConfig(
        group_id="planner",
        topics=(TP.topic,),
        bootstrap_servers="127.0.0.1:1",
        client_id="test",
        backoff_base_s=0,
        backoff_max_s=0,
    )
    return EventConsumer(
        config, handler=handler, publish_raw=broker.publish_raw, on_dead_letter=on_dead_letter
    )


async def test_a_dead_letter_is_published_once_kafka_is_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker, hooked = Broker(refusals=3), list[DeadLetter]()
    with caplog.at_level(logging.WARNING):
        await consumer(broker, hooked)._process(TP, poison_record())
    assert broker.attempts == 4
    [(topic, value, key)] = broker.published
    assert topic == DEAD_LETTERS.name
    assert key == b"wf-1"
    letter = DeadLetter.model_validate_json(value)
    assert (letter.offset, letter.payload()) == (41, b"not an event")
    assert hooked == [letter]  # the workflow is failed only after the letter is safe
    retries = [r for r in caplog.records if "publishing a dead letter" in r.getMessage()]
    assert len(retries) == 3
    assert all(r.levelno == logging.WARNING for r in retries)


async def test_shutdown_interrupts_a_dead_letter_that_cannot_be_published() -> None:
    broker, hooked = Broker(refusals=10**9), list[DeadLetter]()
    task = asyncio.create_task(consumer(broker, hooked)._process(TP, poison_record()))
    for _ in range(1000):
        if broker.attempts >= 3:
            break
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert broker.published == []
    assert hooked == []
