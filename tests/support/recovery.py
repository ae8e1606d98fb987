"""Checks for crash and restart tests: every workflow ends once, every step result once."""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict

from aiokafka import AIOKafkaConsumer

from tests.support.client import GatewayClient
from tributary_scripted_llm import ScriptedLLMAdmin
from tributary_shared.core import topics

TERMINAL = {"completed", "failed", "cancelled"}


def standard_task(index: int, marker: str) -> str:
    """Three parallel steps with one calculator round each (the scripted LLM's default)."""
    return f"compute {index} + 1 {marker}; compute {index} + 2; compute {index} + 3"


async def start_many(
    client: GatewayClient, count: int, marker: str, *, first: int = 0
) -> list[str]:
    return [await client.start(standard_task(i, marker)) for i in range(first, first + count)]


async def wait_until_all_end(
    client: GatewayClient, workflow_ids: list[str], *, within: float = 150
) -> dict[str, dict[str, object]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    states: dict[str, dict[str, object]] = {}
    while True:
        for workflow_id in workflow_ids:
            if workflow_id not in states or states[workflow_id]["status"] not in TERMINAL:
                try:
                    states[workflow_id] = await client.get(workflow_id)
                except Exception:  # the gateway may be restarting
                    await asyncio.sleep(0.5)
        if all(states.get(w, {}).get("status") in TERMINAL for w in workflow_ids):
            return states
        if loop.time() > deadline:
            stuck = {w: states.get(w, {}).get("status") for w in workflow_ids}
            raise AssertionError(f"workflows did not all end: {stuck}")
        await asyncio.sleep(0.3)


async def assert_each_completed_exactly_once(
    client: GatewayClient, workflow_ids: list[str]
) -> None:
    states = await wait_until_all_end(client, workflow_ids)
    for workflow_id in workflow_ids:
        state = states[workflow_id]
        index = int(str(state["task"]).split()[1])  # "compute <index> + 1 ..."
        assert state["status"] == "completed", (workflow_id, state.get("error"))
        steps = state["steps"]
        assert isinstance(steps, list)
        assert [s["status"] for s in steps] == ["completed"] * 3
        for n, step in enumerate(steps, start=1):
            assert f"{index} + {n} = {index + n}" in step["result"]  # the real tool result
        events = await client.follow(workflow_id)
        types = Counter(e.type for e in events)
        assert types["plan.created"] == 1
        assert types["workflow.completed"] == 1
        assert types["workflow.failed"] + types["workflow.cancelled"] == 0
        per_step = Counter(e.data["step_id"] for e in events if e.type == "step.completed")
        assert per_step == {"s1": 1, "s2": 1, "s3": 1}, per_step
        assert types["step.failed"] == 0


CALLS_PER_RUN = 2
"""A standard step's agent asks the model twice: for the calculator call, then the answer."""


def agent_calls_per_step(admin: ScriptedLLMAdmin, state: dict[str, object]) -> dict[str, int]:
    """The agent calls the LLM server received for each step of a workflow, every attempt's."""
    task = str(state["task"])
    steps = state["steps"]
    assert isinstance(steps, list)
    calls = [
        r for r in admin.requests(contains=f"Overall task, for context only: {task}") if r.tools
    ]
    return {
        str(step["step_id"]): sum(
            1
            for r in calls
            if any(
                f"Your step: {step['title']}\n" in str(m.get("content") or "") for m in r.messages
            )
        )
        for step in steps
    }


def assert_steps_ran_once_per_attempt(
    admin: ScriptedLLMAdmin, states: dict[str, dict[str, object]]
) -> None:
    """Count, at the LLM server, the agent calls each step made, against its attempts.

    A step that was never interrupted (attempt 1) asked the model exactly as often
    as one run does: a second, hidden run of it would show here. A step taken
    over after a crash ran at most once per attempt.
    """
    for state in states.values():
        steps = state["steps"]
        assert isinstance(steps, list)
        made_per_step = agent_calls_per_step(admin, state)
        for step in steps:
            made = made_per_step[str(step["step_id"])]
            attempt = int(step["attempt"])
            where = (state["workflow_id"], step["step_id"], attempt, made)
            if attempt == 1:
                assert made == CALLS_PER_RUN, where
            else:
                assert CALLS_PER_RUN <= made <= CALLS_PER_RUN * attempt, where


async def step_results_on_kafka(bootstrap: str, workflow_ids: list[str]) -> dict[str, set[str]]:
    """Distinct event ids of step outcomes per (workflow, step) on the results topic.

    Re-publishing after a crash repeats the same event id, so one id per step
    means one result, however many times it was delivered.
    """
    wanted = {w.encode() for w in workflow_ids}
    consumer = AIOKafkaConsumer(
        topics.STEP_RESULTS.name,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    ids: dict[str, set[str]] = defaultdict(set)
    try:
        idle = 0
        while idle < 3:
            batch = await consumer.getmany(timeout_ms=1000)
            idle = 0 if batch else idle + 1
            for records in batch.values():
                for record in records:
                    if record.key in wanted:
                        event = json.loads(record.value)
                        ids[f"{event['workflow_id']}/{event['step_id']}"].add(event["event_id"])
    finally:
        await consumer.stop()
    return ids
