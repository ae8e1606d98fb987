"""kill -9, SIGTERM, broker and Redis restarts against the real processes.

Each test runs its own service processes (the suite's shared ones are paused)
and a scripted LLM slow enough that work is in flight when the blow lands.
Afterwards every accepted workflow must have completed exactly once, with
each step's result recorded and published once.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from tests.support.client import GatewayClient
from tests.support.history import assert_histories_hold
from tests.support.recovery import (
    assert_each_completed_exactly_once,
    assert_steps_ran_once_per_attempt,
    start_many,
    step_results_on_kafka,
    wait_until_all_end,
)
from tests.support.stack import RunningServices, start_services
from tributary_devstack.stack import Stack
from tributary_scripted_llm import ScriptedLLMServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def slow_llm() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer(latency_ms=400) as server:
        yield server


@pytest.fixture
async def crash_services(
    exclusive_topics: Stack, slow_llm: ScriptedLLMServer, request: pytest.FixtureRequest
) -> AsyncIterator[RunningServices]:
    running = start_services(
        exclusive_topics,
        llm_base_url=slow_llm.base_url,
        label=f"crash-{request.node.name[:40]}",
        # A killed runner's step, or a killed planner's planning, is taken over once
        # its lease lapses: keep those short.
        extra_env={
            "TRIBUTARY_SHUTDOWN_GRACE_S": "20",
            "TRIBUTARY_AGENT_STEP_LEASE_S": "3",
            "TRIBUTARY_PLANNER_PLANNING_LEASE_S": "3",
        },
    )
    yield running
    running.stop()


def bootstrap(stack: Stack) -> str:
    return f"127.0.0.1:{stack.config.kafka_port}"


async def assert_results_published_once(running: RunningServices, ids: list[str]) -> None:
    published = await step_results_on_kafka(bootstrap(running.stack), ids)
    assert len(published) == 3 * len(ids)
    assert {
        key: len(event_ids) for key, event_ids in published.items() if len(event_ids) != 1
    } == {}


@pytest.mark.parametrize(
    ("victim", "delay"),
    [("planner", 0.2), ("agent-runner", 1.0), ("synthesizer", 1.6), ("gateway", 0.5)],
)
async def test_kill_9_mid_flight_loses_and_repeats_nothing(
    crash_services: RunningServices,
    slow_llm: ScriptedLLMServer,
    marker: str,
    victim: str,
    delay: float,
    api_key: str,
) -> None:
    client = GatewayClient(crash_services.gateway_url, api_key)
    try:
        ids = await start_many(client, 6, marker)
        await asyncio.sleep(delay)
        proc = crash_services.process(victim)
        proc.kill(signal.SIGKILL)
        assert proc.wait_exit(10)
        crash_services.start(victim)
    finally:
        await client.aclose()
    # A restarted gateway has a new port.
    client = GatewayClient(crash_services.gateway_url, api_key)
    try:
        await assert_each_completed_exactly_once(client, ids)
        states = await wait_until_all_end(client, ids)
    finally:
        await client.aclose()
    await assert_results_published_once(crash_services, ids)
    assert_steps_ran_once_per_attempt(slow_llm.admin, states)
    stack = crash_services.stack
    await assert_histories_hold(
        bootstrap(stack), f"redis://127.0.0.1:{stack.config.redis_port}/0", ids
    )


async def test_sigterm_lets_running_steps_finish_before_exit(
    crash_services: RunningServices, marker: str, api_key: str
) -> None:
    client = GatewayClient(crash_services.gateway_url, api_key)
    try:
        ids = await start_many(client, 4, marker)
        await asyncio.sleep(0.9)  # the steps' first LLM calls are in flight
        crash_services.process("agent-runner").terminate(grace=30)
        crash_services.start("agent-runner")
        await assert_each_completed_exactly_once(client, ids)
        states = await wait_until_all_end(client, ids)
        attempts = {step["attempt"] for w in ids for step in _steps(states[w])}
        assert attempts == {1}  # drained, not re-run
    finally:
        await client.aclose()


async def test_work_past_the_grace_period_is_picked_up_elsewhere_once(
    exclusive_topics: Stack, slow_llm: ScriptedLLMServer, marker: str, api_key: str
) -> None:
    running = start_services(
        exclusive_topics,
        llm_base_url=slow_llm.base_url,
        label="crash-short-grace",
        extra_env={"TRIBUTARY_SHUTDOWN_GRACE_S": "0"},
    )
    client = GatewayClient(running.gateway_url, api_key)
    try:
        ids = await start_many(client, 4, marker)
        await asyncio.sleep(0.9)
        running.process("agent-runner").terminate(grace=30)
        running.start("agent-runner")
        await assert_each_completed_exactly_once(client, ids)
        await assert_results_published_once(running, ids)
    finally:
        await client.aclose()
        running.stop()


async def restart_mid_flight(
    running: RunningServices,
    marker: str,
    api_key: str,
    stop: Callable[[], None],
    start: Callable[[], object],
) -> None:
    client = GatewayClient(running.gateway_url, api_key)
    try:
        ids = await start_many(client, 6, marker)
        await asyncio.sleep(0.8)
        await asyncio.to_thread(stop)
        await asyncio.sleep(2)
        await asyncio.to_thread(start)
        await assert_each_completed_exactly_once(client, ids)
    finally:
        await client.aclose()
    await assert_results_published_once(running, ids)


async def test_a_broker_restart_mid_flight_loses_nothing(
    crash_services: RunningServices, marker: str, api_key: str
) -> None:
    stack = crash_services.stack
    await restart_mid_flight(crash_services, marker, api_key, stack.stop_kafka, stack.start_kafka)


async def test_a_redis_restart_mid_flight_loses_nothing(
    crash_services: RunningServices, marker: str, api_key: str
) -> None:
    stack = crash_services.stack
    await restart_mid_flight(crash_services, marker, api_key, stack.stop_redis, stack.ensure_redis)


def _steps(state: dict[str, object]) -> list[dict[str, object]]:
    steps = state["steps"]
    assert isinstance(steps, list)
    return steps
