"""``step_duration_seconds``: one observation per step run, labelled with how it ended.

The real handlers run in-process (tests/support/harness.py); what is counted is
the agent-runner's histogram, against the steps the workflow really ran.
"""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from tests.support.harness import Harness
from tests.support.scripted import ScriptedEndpoint, rule
from tests.unit.test_handlers import TASK, TITLES, endpoint, harness, mailbox, wait_until
from tributary_shared.core.status import WorkflowStatus

__all__ = ["endpoint", "harness", "mailbox"]  # fixtures used here


def steps_observed(outcome: str) -> float:
    return REGISTRY.get_sample_value("step_duration_seconds_count", {"outcome": outcome}) or 0.0


async def test_each_completed_step_is_observed_once(harness: Harness) -> None:
    before = steps_observed("completed")
    workflow_id = await harness.submit(TASK)
    await harness.run()
    assert (await harness.record(workflow_id)).status is WorkflowStatus.COMPLETED
    assert steps_observed("completed") - before == len(TITLES)


async def test_a_step_stopped_by_a_cancel_is_observed_as_stopped(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    endpoint.add_rule(rule({"hang": True}, has_tools=True, last_user_contains="alpha"))
    before = (steps_observed("stopped"), steps_observed("completed"))
    workflow_id = await harness.submit(TASK)
    await harness.deliver(harness.take("planner", "workflow.requested"))
    running = harness.start(harness.take("agent-runner", "step.dispatched"))
    await wait_until(lambda: len(endpoint.agent_calls("collect alpha")) == 1)

    assert await harness.control().cancel(workflow_id, tenant_id="default", reason="user")
    await asyncio.wait_for(running, timeout=5)
    assert (steps_observed("stopped"), steps_observed("completed")) == (before[0] + 1, before[1])
