"""Kafka or Redis being away is waited out; only a message's own failures use up its attempts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka import errors as kafka_errors
from aiokafka.structs import ConsumerRecord
from redis import exceptions as redis_errors
from redis._parsers.base import BaseParser

from tributary_shared.core.errors import TransientError
from tributary_shared.core.events import AnyEvent, WorkflowRequested, encode_event
from tributary_shared.runtime.kafka.consumer import ConsumerConfig, EventConsumer
from tributary_shared.runtime.outages import is_outage

# redis-py's own mapping from an error reply to the exception it raises.
_parse_error: Callable[[str], Exception] = BaseParser.parse_error


def redis_reply(reply: str) -> redis_errors.RedisError:
    """The exception redis-py raises for an error reply, parsed as from the wire."""
    error = _parse_error(reply)
    assert isinstance(error, redis_errors.RedisError)
    return error


# Replies Redis gives on a live connection while it cannot serve writes.
REDIS_OUTAGE_REPLIES = [
    "OOM command not allowed when used memory > 'maxmemory'.",
    "READONLY You can't write against a read only replica.",
    "LOADING Redis is loading the dataset in memory",
    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
    "CLUSTERDOWN The cluster is down",
    "TRYAGAIN Multiple keys request during rehashing of slot",
    "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to "
    "persist to disk.",
]


@pytest.mark.parametrize(
    "error",
    [
        redis_errors.ConnectionError("refused"),
        redis_errors.BusyLoadingError("loading the dataset"),
        kafka_errors.KafkaConnectionError("broker down"),
        kafka_errors.KafkaTimeoutError(),
        kafka_errors.NotEnoughReplicasError(),
        kafka_errors.CoordinatorNotAvailableError(),
        ConnectionRefusedError(),
    ],
)
def test_infrastructure_outages_are_recognised(error: Exception) -> None:
    assert is_outage(error)


@pytest.mark.parametrize("reply", REDIS_OUTAGE_REPLIES, ids=lambda r: r.split()[0])
def test_redis_refusing_writes_is_an_outage(reply: str) -> None:
    assert is_outage(redis_reply(reply))


def test_a_refusal_inside_a_pipeline_is_an_outage() -> None:
    # redis-py rewrites the message of a pipeline's failed command.
    for reply in ("OOM command not allowed", "MISCONF unable to persist to disk"):
        error = redis_reply(reply)
        error.args = (f"Command # 1 (SET k v) of pipeline caused error: {error.args}",)
        assert is_outage(error)


def test_an_outage_behind_another_error_is_recognised() -> None:
    outer = RuntimeError("publishing failed")
    outer.__cause__ = redis_errors.ConnectionError("refused")
    assert is_outage(outer)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad"),
        redis_reply("WRONGTYPE Operation against a key holding the wrong kind of value"),
        redis_reply("ERR unknown command 'FOO'"),
        redis_reply("NOSCRIPT No matching script. Please use EVAL."),
        kafka_errors.MessageSizeTooLargeError(),
        TransientError("llm down"),
    ],
)
def test_bugs_and_bad_data_are_not_outages(error: Exception) -> None:
    assert not is_outage(error)


def _record(event: WorkflowRequested) -> ConsumerRecord[Any, Any]:
    value = encode_event(event)
    return ConsumerRecord(
        topic="workflow.events",
        partition=0,
        offset=7,
        timestamp=0,
        timestamp_type=0,
        key=event.workflow_id.encode(),
        value=value,
        checksum=None,
        serialized_key_size=len(event.workflow_id),
        serialized_value_size=len(value),
        headers=(),
    )


@pytest.mark.parametrize("reply", ["OOM command not allowed", "READONLY You can't write"])
async def test_a_handler_meeting_a_redis_refusal_waits_and_is_not_dead_lettered(
    reply: str,
) -> None:
    calls = 0
    dead_letters: list[bytes] = []

    async def handler(_event: AnyEvent) -> None:
        nonlocal calls
        calls += 1
        if calls <= 5:
            raise redis_reply(reply)

    async def publish_raw(topic: str, value: bytes, key: bytes | None, _h: dict[str, str]) -> None:
        dead_letters.append(value)

    config = ConsumerConfig(
        group_id="agent-runner",
        topics=("workflow.events",),
        bootstrap_servers="127.0.0.1:1",
        client_id="test",
        attempts=1,  # a single real failure would dead-letter at once
        backoff_base_s=0,
        backoff_max_s=0,
    )
    consumer = EventConsumer(config, handler=handler, publish_raw=publish_raw)
    event = WorkflowRequested(workflow_id="wf_outage", task="t")
    await asyncio.wait_for(
        consumer._process(TopicPartition("workflow.events", 0), _record(event)), 5
    )
    assert calls == 6
    assert dead_letters == []
