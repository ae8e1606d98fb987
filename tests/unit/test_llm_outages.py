"""A failing model endpoint, through the real handlers (tests/support/harness.py).

The workflow rides an outage out to its deadline, not to a count of retries:
no step fails while the endpoint is away, the workflow's events say that it
waits, and a deadline that passes first ends it with ``deadline_exceeded``. A
dead deployment hands its calls down the chain, and each step's outcome says
which deployment served it. The scripted endpoint's hosts stand for the
deployments; a host taken down refuses connections.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from itertools import pairwise

import pytest

from tests.support.harness import Harness
from tests.support.scripted import HOST, ScriptedEndpoint, deployment, rule
from tributary_shared.core.events import LLMWaiting, StepCompleted
from tributary_shared.core.status import StepStatus, WorkflowStatus

TASK = "collect alpha; collect beta; collect gamma"
MODEL = "gpt-4o-mini"
BACKUP = "backup-llm"
# Short pauses, a notice at most every 0.3 s: a second of outage is many tries.
QUICK: dict[str, object] = {
    "TRIBUTARY_LLM_MAX_BACKOFF_S": 0.05,
    "TRIBUTARY_LLM_WAIT_NOTICE_INTERVAL_S": 0.3,
}


@pytest.fixture
async def endpoint() -> AsyncIterator[ScriptedEndpoint]:
    scripted = ScriptedEndpoint()
    yield scripted
    await scripted.aclose()


async def waits_logged(harness: Harness, workflow_id: str) -> list[LLMWaiting]:
    entries = await harness.store.read_log(workflow_id, count=1000)
    return [
        LLMWaiting.model_validate_json(e.event_json) for e in entries if e.type == "llm.waiting"
    ]


async def test_a_dead_first_deployment_hands_the_workflow_to_the_second_and_says_so(
    endpoint: ScriptedEndpoint,
) -> None:
    chain = {MODEL: [deployment("primary", HOST), deployment("secondary", BACKUP)]}
    endpoint.take_down(HOST)
    async with Harness(endpoint, llm={"TRIBUTARY_LLM_DEPLOYMENTS": chain}).running() as harness:
        workflow_id = await harness.submit(TASK)
        await harness.run()
        record = await harness.record(workflow_id)
    assert record.status is WorkflowStatus.COMPLETED
    assert [s.status for s in record.steps] == [StepStatus.COMPLETED] * 3
    outcomes = harness.published_of(workflow_id, "step.completed")
    assert len(outcomes) == 3
    for outcome in outcomes:
        assert isinstance(outcome, StepCompleted)
        assert outcome.deployments == ("secondary",)
        assert outcome.models == (MODEL,)
    assert endpoint.attempts_at(HOST) >= 3  # tried first, refused, handed over
    assert len(endpoint.requests) == endpoint.attempts_at(BACKUP)  # the second answered all


async def test_an_outage_amid_parallel_steps_is_waited_out_and_shows_in_the_events(
    endpoint: ScriptedEndpoint,
) -> None:
    async with Harness(endpoint, llm=QUICK).running() as harness:
        workflow_id = await harness.submit(TASK)
        await harness.deliver(harness.take("planner", "workflow.requested"))
        steps = [harness.take("agent-runner", "step.dispatched") for _ in range(3)]
        endpoint.take_down()
        running = [harness.start(step) for step in steps]
        await asyncio.sleep(1.5)
        refused = endpoint.attempts_at()
        assert refused > 3 * 3  # each step went on past TRIBUTARY_LLM_MAX_ATTEMPTS
        assert not any(task.done() for task in running)
        endpoint.bring_up()
        await asyncio.wait_for(asyncio.gather(*running), timeout=10)
        await harness.run()
        record = await harness.record(workflow_id)
        waits = await waits_logged(harness, workflow_id)
    assert record.status is WorkflowStatus.COMPLETED
    assert harness.published_of(workflow_id, "step.failed") == []
    assert [s.attempt for s in record.steps] == [1, 1, 1]  # carried on, none restarted
    # Each step said it waited: at its first pause and then at most every 0.3 s,
    # never once per try.
    assert {w.step_id for w in waits} == {s.step_id for s in record.steps}
    assert len(waits) < refused
    for step in record.steps:
        told = sorted(w.occurred_at for w in waits if w.step_id == step.step_id)
        assert all((b - a).total_seconds() >= 0.29 for a, b in pairwise(told))
    for wait in waits:
        assert (wait.role, wait.model, wait.deployment) == ("agent", MODEL, MODEL)
        assert wait.error is not None
        assert wait.error.code == "llm_unavailable"
        assert wait.next_try_at is not None
        assert wait.waiting_since <= wait.next_try_at
    published = {e.event_id for e in harness.published_of(workflow_id, "llm.waiting")}
    assert published == {w.event_id for w in waits}


# The deadline tests run the handlers without the planner's deadline sweep (no
# ``running()``): the services that wait for the model end the workflow themselves.


async def test_a_deadline_that_passes_during_an_outage_fails_the_workflow_with_deadline_exceeded(
    endpoint: ScriptedEndpoint,
) -> None:
    harness = Harness(endpoint, llm=QUICK)
    workflow_id = await harness.submit(TASK, deadline_s=2)
    await harness.deliver(harness.take("planner", "workflow.requested"))
    endpoint.take_down()
    started = time.time()
    await asyncio.wait_for(harness.run(), timeout=15)
    record = await harness.record(workflow_id)
    waits = await waits_logged(harness, workflow_id)
    assert record.status is WorkflowStatus.FAILED
    assert record.deadline_at is not None
    assert record.deadline_at <= time.time() < record.deadline_at + 1.0  # at it, not before
    assert time.time() - started > 1.0
    assert record.error is not None
    assert record.error.code == "deadline_exceeded"
    # Said as the planner's deadline sweep says it, whoever gets there first.
    assert record.error.message == "the workflow did not finish within its deadline of 2s"
    # The step whose call waited failed with the deadline, and with it the workflow.
    step_errors = [s.error.code for s in record.steps if s.error is not None]
    assert step_errors == ["deadline_exceeded"]
    assert waits  # it said it was waiting until then
    [failed] = harness.published_of(workflow_id, "workflow.failed")
    assert json.loads(failed.model_dump_json())["error"]["code"] == "deadline_exceeded"


async def test_a_deadline_that_passes_while_planning_waits_fails_with_deadline_exceeded(
    endpoint: ScriptedEndpoint,
) -> None:
    endpoint.take_down()
    harness = Harness(endpoint, llm=QUICK)
    workflow_id = await harness.submit(TASK, deadline_s=1)
    await asyncio.wait_for(harness.run(), timeout=10)
    record = await harness.record(workflow_id)
    waits = await waits_logged(harness, workflow_id)
    assert record.status is WorkflowStatus.FAILED
    assert record.error is not None
    assert record.error.code == "deadline_exceeded"
    assert record.error.message == "the workflow did not finish within its deadline of 1s"
    assert harness.published_of(workflow_id, "plan.created") == []
    assert {w.role for w in waits} == {"planner"}


async def test_a_workflow_cancelled_while_its_plan_waits_for_the_model_stops_the_call(
    endpoint: ScriptedEndpoint,
) -> None:
    endpoint.take_down()
    async with Harness(endpoint, llm=QUICK).running() as harness:
        workflow_id = await harness.submit(TASK)
        planning = harness.start(harness.take("planner", "workflow.requested"))
        await asyncio.sleep(0.5)
        assert await harness.control().cancel(workflow_id, tenant_id="default", reason="moot")
        # Its next notice finds the workflow ended: the call stops instead of waiting on.
        await asyncio.wait_for(planning, timeout=5)
        tries = endpoint.attempts_at()
        await asyncio.sleep(0.5)
        assert endpoint.attempts_at() == tries
        record = await harness.record(workflow_id)
        logged = [e.type for e in await harness.store.read_log(workflow_id)]
    assert record.status is WorkflowStatus.CANCELLED
    assert logged[-1] == "workflow.cancelled"  # no notice after the end


async def test_steps_that_finish_after_the_deadline_end_the_workflow_with_deadline_exceeded(
    endpoint: ScriptedEndpoint,
) -> None:
    endpoint.add_rule(rule({"refusal": "no"}, has_tools=True))  # every step fails
    harness = Harness(endpoint)  # no deadline sweep either
    workflow_id = await harness.submit(TASK, deadline_s=1)
    await harness.deliver(harness.take("planner", "workflow.requested"))
    for _ in range(3):
        await harness.deliver(harness.take("agent-runner", "step.dispatched"))
    await asyncio.sleep(1.1)  # the last outcome reaches the synthesizer past the deadline
    await harness.run()
    record = await harness.record(workflow_id)
    assert [s.status for s in record.steps] == [StepStatus.FAILED] * 3
    assert record.status is WorkflowStatus.FAILED
    assert record.error is not None
    assert record.error.code == "deadline_exceeded"  # what the deadline sweep would say
    assert harness.published_of(workflow_id, "synthesis.started") == []


async def test_a_synthesis_that_waits_for_the_model_until_the_deadline_fails_with_it(
    endpoint: ScriptedEndpoint,
) -> None:
    harness = Harness(endpoint, llm=QUICK)  # no deadline sweep
    workflow_id = await harness.submit(TASK, deadline_s=2)
    await harness.deliver(harness.take("planner", "workflow.requested"))
    for _ in range(3):
        await harness.deliver(harness.take("agent-runner", "step.dispatched"))
    endpoint.take_down()  # every step has its answer; the synthesis meets the outage
    await asyncio.wait_for(harness.run(), timeout=10)
    record = await harness.record(workflow_id)
    waits = await waits_logged(harness, workflow_id)
    assert [s.status for s in record.steps] == [StepStatus.COMPLETED] * 3
    assert record.status is WorkflowStatus.FAILED
    assert record.error is not None
    assert record.error.code == "deadline_exceeded"
    assert record.error.message == "the workflow did not finish within its deadline of 2s"
    assert {w.role for w in waits} == {"synthesizer"}
