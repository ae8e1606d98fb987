"""What the consumer runtime reports about itself: lag per partition, handlers in progress.

An operator reads ``consumer_lag_records`` to see a group falling behind, and
``handlers_in_progress`` to see work stuck in a process; both must come back
down when the work is done, and a revoked partition must stop reporting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY

from tests.support.fake_kafka import FakeKafkaConsumer, request_log
from tests.unit.test_consumer_backpressure import P0, P1, TOPIC, Handlers, eventually, runtime
from tributary_shared.core.events import (
    PlannedStep,
    StepCompleted,
    StepDispatched,
    WorkflowRequested,
)
from tributary_shared.runtime.kafka.consumer import EventConsumer
from tributary_shared.runtime.kafka.progress import HandlersInProgress, step_of

GROUP = "agent-runner"  # the group id ``runtime`` configures


def lag(partition: int) -> float | None:
    return REGISTRY.get_sample_value(
        "consumer_lag_records",
        {"consumer": GROUP, "topic": TOPIC, "partition": str(partition)},
    )


def in_progress(service: str, kind: str) -> float | None:
    return REGISTRY.get_sample_value("handlers_in_progress", {"service": service, "kind": kind})


@pytest.fixture
async def running() -> AsyncIterator[list[EventConsumer]]:
    started: list[EventConsumer] = []
    yield started
    for consumer in started:
        await consumer.stop()


async def test_lag_counts_unfinished_records_and_falls_to_zero_when_they_finish(
    running: list[EventConsumer],
) -> None:
    fake = FakeKafkaConsumer({P0: request_log(P0, 30), P1: request_log(P1, 4)})
    handlers = Handlers(stuck=lambda _id: True)
    consumer = runtime(fake, handlers, max_in_flight=10, lag_interval_s=0.01)
    running.append(consumer)
    await consumer.start()
    await eventually(lambda: handlers.running == 10)
    # Fetched-but-stuck records count, as would those a crash redelivers.
    await eventually(lambda: (lag(0) or 0) + (lag(1) or 0) == 34)

    handlers.release.set()
    await eventually(lambda: lag(0) == 0 and lag(1) == 0)


async def test_a_revoked_partition_stops_reporting_lag(running: list[EventConsumer]) -> None:
    fake = FakeKafkaConsumer({P0: request_log(P0, 3), P1: request_log(P1, 3)})
    handlers = Handlers(stuck=lambda _id: True)
    consumer = runtime(fake, handlers, lag_interval_s=0.01)
    running.append(consumer)
    await consumer.start()
    await eventually(lambda: lag(0) == 3 and lag(1) == 3)

    await fake.rebalance({P1})
    assert lag(0) is None  # gone with the revocation, not at the next measurement
    await eventually(lambda: lag(1) == 3)

    await consumer.stop()
    running.remove(consumer)
    assert lag(1) is None


async def test_handlers_in_progress_count_running_handlers_and_return_to_zero(
    running: list[EventConsumer],
) -> None:
    fake = FakeKafkaConsumer({P0: request_log(P0, 3)})
    handlers = Handlers(stuck=lambda _id: True)
    consumer = runtime(fake, handlers, service="metrics-test-service")
    running.append(consumer)
    await consumer.start()
    await eventually(lambda: handlers.running == 3)
    assert in_progress("metrics-test-service", "event") == 3
    assert in_progress("metrics-test-service", "workflow") == 3  # one request per workflow

    handlers.release.set()
    await eventually(lambda: handlers.running == 0)
    assert in_progress("metrics-test-service", "event") == 0
    assert in_progress("metrics-test-service", "workflow") == 0


def _dispatch(workflow_id: str, step_id: str) -> StepDispatched:
    return StepDispatched(
        workflow_id=workflow_id,
        step=PlannedStep(step_id=step_id, index=0, title="t", instruction="i"),
        task="t",
    )


def test_workflows_and_steps_are_counted_once_however_many_of_their_events_are_in_hand() -> None:
    tracker = HandlersInProgress("metrics-test-steps")
    first, again = _dispatch("wf_a", "s1"), _dispatch("wf_a", "s1")
    other_step = StepCompleted(workflow_id="wf_a", step_id="s2", result="r", iterations=1)
    with tracker.handling(first), tracker.handling(again), tracker.handling(other_step):
        assert in_progress("metrics-test-steps", "event") == 3
        assert in_progress("metrics-test-steps", "workflow") == 1
        assert in_progress("metrics-test-steps", "step") == 2
    assert in_progress("metrics-test-steps", "event") == 0
    assert in_progress("metrics-test-steps", "workflow") == 0
    assert in_progress("metrics-test-steps", "step") == 0


def test_the_step_of_an_event_is_its_step_id_or_its_dispatched_step() -> None:
    assert step_of(_dispatch("wf", "s7")) == "s7"
    assert step_of(StepCompleted(workflow_id="wf", step_id="s8", result="r", iterations=1)) == "s8"
    assert step_of(WorkflowRequested(workflow_id="wf", task="t")) is None
