"""The model endpoint away, across the real services: waited out up to each workflow's deadline.

The services' model is served by a chain of two deployments: the first an
address where nothing listens (dead for good), the second the scripted server.
Every call first meets the dead one, so the chain's fallback is always at work
and each step's outcome says which deployment served it.

Then the scripted server is stopped for about 30 s (its connections refused),
with two workflows running: one with three parallel steps and no deadline to
speak of, which must complete with no step failed and its wait visible in its
events; and one whose deadline passes during the outage, which must end with
``deadline_exceeded``, not ``llm_unavailable``. Both share the one outage, so the
module costs one 30 s wait.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.support.client import GatewayClient
from tests.support.history import assert_histories_hold
from tests.support.recovery import standard_task
from tests.support.stack import RunningServices, free_port, start_services
from tributary_devstack.stack import Stack
from tributary_scripted_llm import ScriptedLLMServer
from tributary_shared.core.keys import WorkflowKeys

pytestmark = pytest.mark.integration

OUTAGE_S = 30
DEADLINE_S = 15
"""The short workflow's deadline: it passes mid-outage, well before the endpoint returns."""


@pytest.fixture(scope="module")
def chain_llm() -> Iterator[ScriptedLLMServer]:
    # Agent calls take a while, so that steps are mid-flight when the endpoint stops.
    with ScriptedLLMServer(latency_ms=100) as server:
        yield server


@pytest.fixture(scope="module")
def chain_services(
    exclusive_topics: Stack, chain_llm: ScriptedLLMServer
) -> Iterator[RunningServices]:
    nowhere = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: refused at once
    chain = {
        "gpt-4o-mini": [
            {"id": "dead", "base_url": nowhere},
            {"id": "live", "base_url": chain_llm.base_url},
        ]
    }
    running = start_services(
        exclusive_topics,
        llm_base_url=chain_llm.base_url,
        label="llm-outages",
        extra_env={
            "TRIBUTARY_LLM_DEPLOYMENTS": json.dumps(chain),
            # A deployment whose tries ran out is tried last until it answers again.
            "TRIBUTARY_LLM_FALLBACK_COOLDOWN_S": "600",
            "TRIBUTARY_LLM_WAIT_NOTICE_INTERVAL_S": "5",
            "TRIBUTARY_PLANNER_DEADLINE_SWEEP_INTERVAL_S": "0.5",
        },
    )
    yield running
    running.stop()


def redis_url(running: RunningServices) -> str:
    return f"redis://127.0.0.1:{running.stack.config.redis_port}/0"


def bootstrap(running: RunningServices) -> str:
    return f"127.0.0.1:{running.stack.config.kafka_port}"


async def logged_events(running: RunningServices, workflow_id: str) -> list[dict[str, Any]]:
    redis = Redis.from_url(redis_url(running))
    try:
        entries: Any = await redis.xrange(WorkflowKeys(workflow_id).log)
    finally:
        await redis.aclose()
    return [json.loads(fields[b"event"]) for _id, fields in entries]


async def test_a_dead_first_deployment_hands_every_call_to_the_second_and_outcomes_say_so(
    chain_services: RunningServices, marker: str, api_key: str
) -> None:
    client = GatewayClient(chain_services.gateway_url, api_key)
    try:
        workflow_id, events, state = await client.run(standard_task(1, marker))
    finally:
        await client.aclose()
    assert state["status"] == "completed", state.get("error")
    outcomes = [e.data for e in events if e.type == "step.completed"]
    assert len(outcomes) == 3
    assert [o["deployments"] for o in outcomes] == [["live"]] * 3
    assert not [e for e in events if e.type == "step.failed"]
    # A call may have paused between its tries of the dead one before handing over;
    # it never waited on the live one.
    waits = [e.data for e in events if e.type == "llm.waiting"]
    assert {w["deployment"] for w in waits} <= {"dead"}
    await assert_histories_hold(bootstrap(chain_services), redis_url(chain_services), [workflow_id])


@dataclass(frozen=True)
class Outage:
    patient: str
    """Three parallel steps, running when the endpoint stopped."""
    short: str
    """Running when the endpoint stopped; its deadline passed before it returned."""
    short_while_down: dict[str, Any]
    """The short workflow as the API showed it while the endpoint was still away."""
    outage_s: float


@pytest.fixture(scope="module")
async def outage(
    chain_services: RunningServices, chain_llm: ScriptedLLMServer, api_key: str
) -> AsyncIterator[Outage]:
    marker = "#llm-outage"
    # Agent calls answer after 1.5 s: the steps are in the middle of them at the stop.
    slow = chain_llm.admin.add_rule(contains=marker, has_tools=True, responses=[{"delay_ms": 1500}])
    client = GatewayClient(chain_services.gateway_url, api_key)
    try:
        patient = await client.start(standard_task(2, marker))
        short = await client.start(standard_task(3, marker), options={"deadline_s": DEADLINE_S})
        await client.wait_for_status(patient, "running", within=30)
        await client.wait_for_status(short, "running", within=30)
        await asyncio.sleep(0.5)  # the steps' first calls are at the endpoint now
        stopped_at = time.monotonic()
        await asyncio.to_thread(chain_llm.stop)
        try:
            # The deadline passes while the endpoint is away (checked, or this proves nothing).
            await client.wait_for_status(short, "failed", within=DEADLINE_S + 10)
            short_while_down = await client.get(short)
            assert (await client.get(patient))["status"] == "running"
            await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped_at)))
        finally:
            await asyncio.to_thread(chain_llm.start)
        yield Outage(
            patient=patient,
            short=short,
            short_while_down=short_while_down,
            outage_s=time.monotonic() - stopped_at,
        )
    finally:
        await client.aclose()
        chain_llm.admin.delete_rule(slow)


async def test_a_30s_outage_amid_parallel_steps_is_waited_out_and_no_step_fails(
    outage: Outage, chain_services: RunningServices, api_key: str
) -> None:
    assert outage.outage_s >= OUTAGE_S
    client = GatewayClient(chain_services.gateway_url, api_key)
    try:
        await client.wait_for_status(outage.patient, "completed", within=60)
        state = await client.get(outage.patient)
    finally:
        await client.aclose()
    assert [s["status"] for s in state["steps"]] == ["completed"] * 3
    events = await logged_events(chain_services, outage.patient)
    assert not [e for e in events if e["type"] == "step.failed"]
    # The workflow's events said it was waiting for the model, step by step, and
    # not once per try: a notice at most every 5 s per call.
    waits = [e for e in events if e["type"] == "llm.waiting"]
    assert {w["step_id"] for w in waits} == {s["step_id"] for s in state["steps"]}
    for step in state["steps"]:
        told = sorted(
            datetime.fromisoformat(w["occurred_at"])
            for w in waits
            if w["step_id"] == step["step_id"]
        )
        assert len(told) >= 2  # 30 s of outage: more than the first pause
        assert all((b - a).total_seconds() >= 4.9 for a, b in pairwise(told))
    assert {w["error"]["code"] for w in waits} <= {"llm_unavailable", "llm_timeout"}
    assert all(w["next_try_at"] >= w["waiting_since"] for w in waits)
    await assert_histories_hold(
        bootstrap(chain_services), redis_url(chain_services), [outage.patient]
    )


async def test_an_outage_longer_than_the_deadline_ends_the_workflow_with_deadline_exceeded(
    outage: Outage, chain_services: RunningServices
) -> None:
    state = outage.short_while_down
    assert state["status"] == "failed"
    assert state["error"]["code"] == "deadline_exceeded"
    step_codes = {s["error"]["code"] for s in state["steps"] if s.get("error")}
    assert "llm_unavailable" not in step_codes
    events = await logged_events(chain_services, outage.short)
    assert [e for e in events if e["type"] == "llm.waiting"]  # it said it waited, until then
    assert events[-1]["type"] == "workflow.failed"  # no notice after the end
    await assert_histories_hold(
        bootstrap(chain_services), redis_url(chain_services), [outage.short]
    )
