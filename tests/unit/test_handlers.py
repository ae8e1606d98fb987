"""The handlers' hard-to-reach branches, in-process: redelivery, crashes, cancels, revokes.

Each test runs the real planner, agent-runner and synthesizer handlers on the
in-memory twins with the scripted LLM behind the real SDK (tests/support/harness.py).
Guarantees are proven by counting what they protect where it happens: requests
the LLM endpoint received per caller and step, and runs of a side-effecting tool.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel

from tests.support.harness import Crash, Harness
from tests.support.scripted import PLAN_FORMAT, ScriptedEndpoint, rule
from tributary_agent_runner.tools.idempotency import current_call_key
from tributary_agent_runner.tools.registry import Tool
from tributary_scripted_llm import Rule
from tributary_shared.core import machine
from tributary_shared.core.budget import Reservation
from tributary_shared.core.errors import BudgetExceeded
from tributary_shared.core.events import (
    StepCompleted,
    StepFailed,
    StepStarted,
    TokenUsage,
    WorkflowCancelled,
    derived_event_id,
)
from tributary_shared.core.machine import Move
from tributary_shared.core.status import StepStatus, WorkflowStatus

TASK = "collect alpha; collect beta; collect gamma"
TITLES = ("collect alpha", "collect beta", "collect gamma")


class MailArgs(BaseModel):
    to: str


class Mailbox:
    """A side-effecting tool that counts the mails it really sent."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.tool = Tool(
            name="send_mail",
            description="Send a mail.",
            args_model=MailArgs,
            run=self._send,
            read_only=False,
        )

    async def _send(self, args: MailArgs) -> str:
        self.sent.append(args.to)
        return f"sent to {args.to}"


@pytest.fixture
async def endpoint() -> AsyncIterator[ScriptedEndpoint]:
    scripted = ScriptedEndpoint()
    yield scripted
    await scripted.aclose()


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
async def harness(endpoint: ScriptedEndpoint, mailbox: Mailbox) -> AsyncIterator[Harness]:
    async with Harness(endpoint, tools=[mailbox.tool]).running() as running:
        yield running


def mail_each_step(endpoint: ScriptedEndpoint) -> None:
    """Every agent first mails ops, then answers from the tool result."""
    endpoint.add_rule(
        rule(
            {"tool_calls": [{"name": "send_mail", "arguments": {"to": "ops@example.org"}}]},
            has_tools=True,
            has_tool_result=False,
        )
    )


async def assert_completed_once(
    harness: Harness, endpoint: ScriptedEndpoint, workflow_id: str, *, mails: int = 0
) -> None:
    """The workflow ended with one answer, each step ran its model once, nothing repeated."""
    record = await harness.record(workflow_id)
    assert record.status is WorkflowStatus.COMPLETED
    assert [s.status for s in record.steps] == [StepStatus.COMPLETED] * len(TITLES)
    assert record.steps_finished == len(TITLES)
    assert len(endpoint.planner_calls()) == 1
    for title in TITLES:
        assert len(endpoint.agent_calls(title)) == (2 if mails else 1), title
    assert len(endpoint.synthesis_calls()) == 1
    assert len(harness.distinct_ids(workflow_id, "workflow.completed")) == 1
    assert len(harness.distinct_ids(workflow_id, "step.completed")) == len(TITLES)
    assert len(harness.distinct_ids(workflow_id, "plan.created")) == 1


async def test_a_workflow_runs_through_the_three_handlers(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    workflow_id = await harness.submit(TASK)
    await harness.run()
    await assert_completed_once(harness, endpoint, workflow_id)
    record = await harness.record(workflow_id)
    assert record.result is not None
    assert all(f"collect {name}" in record.result for name in ("alpha", "beta", "gamma"))
    assert harness.crashes == 0


async def test_every_event_delivered_twice_changes_nothing(
    endpoint: ScriptedEndpoint, mailbox: Mailbox
) -> None:
    mail_each_step(endpoint)
    async with Harness(endpoint, tools=[mailbox.tool], deliver_twice=True).running() as harness:
        workflow_id = await harness.submit(TASK)
        await harness.run()
        await assert_completed_once(harness, endpoint, workflow_id, mails=1)
    assert mailbox.sent == ["ops@example.org"] * len(TITLES)


async def test_replaying_every_event_after_the_end_changes_nothing(
    harness: Harness, endpoint: ScriptedEndpoint, mailbox: Mailbox
) -> None:
    mail_each_step(endpoint)
    workflow_id = await harness.submit(TASK)
    await harness.run()
    before = await harness.record(workflow_id)
    calls = len(endpoint.requests)
    first_final = harness.published_of(workflow_id, "workflow.completed")
    assert len(first_final) == 1

    request = harness.store.records[workflow_id]
    replay = [e for e in harness.published if e.workflow_id == workflow_id]
    harness.redeliver(replay)
    await harness.run()

    assert len(endpoint.requests) == calls
    assert mailbox.sent == ["ops@example.org"] * len(TITLES)
    assert await harness.record(workflow_id) == before == request
    # Only a redelivered cause of the final result sends it again, with the same id.
    finals = harness.published_of(workflow_id, "workflow.completed")
    assert {e.event_id for e in finals} == {first_final[0].event_id}


@pytest.mark.parametrize(
    ("service", "move", "runs_of_the_crashed_work"),
    [
        # the plan was recorded but its dispatches never left: sent again, not re-planned
        ("planner", Move.RECORD_PLAN, {"planner": 1}),
        # a step started, the runner died before calling its model: it runs again once
        ("agent-runner", Move.START_STEP, {"agent": 1}),
        # the outcome was recorded but not published: sent again, the model not asked again
        ("agent-runner", Move.FINISH_STEP, {"agent": 1}),
        # synthesis started, the synthesizer died before its model answered
        ("synthesizer", Move.START_SYNTHESIS, {"synthesis": 1}),
        # the final result was recorded but not published: sent again, no second answer
        ("synthesizer", Move.COMPLETE, {"synthesis": 1}),
    ],
)
async def test_a_crash_between_two_writes_loses_and_repeats_nothing(
    harness: Harness,
    endpoint: ScriptedEndpoint,
    service: str,
    move: Move,
    runs_of_the_crashed_work: dict[str, int],
) -> None:
    harness.crash_after(service, move)
    workflow_id = await harness.submit(TASK)
    await harness.run()
    assert harness.crashes == 1
    await assert_completed_once(harness, endpoint, workflow_id)
    if move is Move.FINISH_STEP:
        assert len(harness.published_of(workflow_id, "step.completed")) == len(TITLES)


async def test_a_crash_before_publishing_the_plan_sends_the_same_dispatches(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    harness.crash_before_publishing("planner", "step.dispatched")
    workflow_id = await harness.submit(TASK)
    await harness.run()
    assert harness.crashes == 1
    await assert_completed_once(harness, endpoint, workflow_id)
    dispatched = harness.distinct_ids(workflow_id, "step.dispatched")
    assert len(dispatched) == len(TITLES)


@pytest.mark.parametrize("loop_repeat_limit", [3, 2])
async def test_a_resumed_step_does_not_repeat_its_side_effects(
    endpoint: ScriptedEndpoint, mailbox: Mailbox, loop_repeat_limit: int
) -> None:
    """The runner is stopped after the tool acted and before the step finished (a
    revoked partition); the step runs again elsewhere and gets the recorded result.
    With a repeat limit of 2, the rerun's repeat of the first attempt's call would
    be taken for a loop if loop records were not kept per attempt."""
    async with Harness(
        endpoint, tools=[mailbox.tool], loop_repeat_limit=loop_repeat_limit
    ).running() as harness:
        await _resume_after_revoke(harness, endpoint, mailbox)


async def _resume_after_revoke(
    harness: Harness, endpoint: ScriptedEndpoint, mailbox: Mailbox
) -> None:
    mail_each_step(endpoint)
    endpoint.add_rule(rule({"hang": True}, has_tool_result=True, last_user_contains="alpha"))
    workflow_id = await harness.submit(TASK)
    await harness.deliver(harness.take("planner", "workflow.requested"))
    first_run = harness.start(harness.take("agent-runner", "step.dispatched"))
    await wait_until(lambda: len(endpoint.agent_calls("collect alpha")) == 2)
    assert mailbox.sent == ["ops@example.org"]

    first_run.cancel()  # the partition is revoked: its handler is stopped
    with pytest.raises(asyncio.CancelledError):
        await first_run
    record = await harness.record(workflow_id)
    assert record.steps[0].status is StepStatus.RUNNING
    assert record.steps[0].owner is None  # given up: the next delivery need not wait

    endpoint.app.state.scripted.rules.clear()
    mail_each_step(endpoint)
    harness.redeliver(harness.published_of(workflow_id, "step.dispatched")[:1])
    await harness.run()

    record = await harness.record(workflow_id)
    assert record.status is WorkflowStatus.COMPLETED
    assert record.steps[0].attempt == 2
    assert "sent to ops@example.org" in (record.steps[0].result or "")
    assert "loop" not in (record.steps[0].result or "")
    # One real mail per step: the resumed alpha step got the recorded result.
    assert sorted(mailbox.sent) == ["ops@example.org"] * len(TITLES)
    assert len(harness.distinct_ids(workflow_id, "step.completed")) == len(TITLES)


async def test_a_step_result_arriving_after_cancel_is_dropped(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    """The runner missed the cancellation signal; its late answer must change nothing."""
    endpoint.add_rule(
        rule({"delay_ms": 200, "content": "late"}, has_tools=True, last_user_contains="alpha")
    )
    workflow_id = await harness.submit(TASK)
    await harness.deliver(harness.take("planner", "workflow.requested"))
    running = harness.start(harness.take("agent-runner", "step.dispatched"))
    await wait_until(lambda: len(endpoint.agent_calls("collect alpha")) == 1)
    # Cancelled in the store only: no signal reaches the running step.
    cancelled = WorkflowCancelled(workflow_id=workflow_id, reason="stop")
    await harness.store.apply(machine.cancel(cancelled))
    await running

    record = await harness.record(workflow_id)
    assert record.status is WorkflowStatus.CANCELLED
    assert record.steps[0].status is StepStatus.RUNNING
    assert record.steps_finished == 0
    assert harness.published_of(workflow_id, "step.completed") == []
    await harness.run()
    assert endpoint.synthesis_calls() == []
    assert endpoint.agent_calls("collect beta") == []  # checked before their first call


async def test_cancel_stops_a_running_step_at_once(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    endpoint.add_rule(rule({"hang": True}, has_tools=True, last_user_contains="alpha"))
    workflow_id = await harness.submit(TASK)
    await harness.deliver(harness.take("planner", "workflow.requested"))
    running = harness.start(harness.take("agent-runner", "step.dispatched"))
    await wait_until(lambda: len(endpoint.agent_calls("collect alpha")) == 1)

    assert await harness.control().cancel(workflow_id, tenant_id="default", reason="user")
    await asyncio.wait_for(running, timeout=5)  # the hung model call was abandoned

    record = await harness.record(workflow_id)
    assert record.status is WorkflowStatus.CANCELLED
    assert [e.type for e in harness.published_of(workflow_id)][-1] == "workflow.cancelled"
    assert harness.cancellations.announced == [workflow_id]
    assert not await harness.control().cancel(workflow_id, tenant_id="default", reason="again")


async def test_a_duplicate_dispatch_of_a_finished_step_resends_its_outcome(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    workflow_id = await harness.submit(TASK)
    await harness.run()
    dispatch = harness.published_of(workflow_id, "step.dispatched")[0]
    outcome = harness.published_of(workflow_id, "step.completed")[0]
    assert isinstance(outcome, StepCompleted)
    calls = len(endpoint.requests)

    harness.redeliver([dispatch])
    await harness.run()

    assert len(endpoint.requests) == calls
    resent = harness.published_of(workflow_id, "step.completed")
    assert [e.event_id for e in resent].count(outcome.event_id) == 2


async def wait_until(condition: object, *, timeout_s: float = 5.0) -> None:
    assert callable(condition)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


# -- leases: one runner per step, whatever Kafka delivers ---------------------------------


async def test_a_second_delivery_of_a_running_step_waits_for_its_holder(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    """A rebalance hands the step to a second runner while the first still works."""
    endpoint.add_rule(rule({"delay_ms": 300}, has_tools=True, last_user_contains="alpha"))
    workflow_id = await harness.submit(TASK)
    await harness.deliver(harness.take("planner", "workflow.requested"))
    dispatch = harness.take("agent-runner", "step.dispatched")
    first = harness.start(dispatch)
    await wait_until(lambda: len(endpoint.agent_calls("collect alpha")) == 1)
    second = harness.start(dispatch)
    await asyncio.wait_for(asyncio.gather(first, second), timeout=10)

    assert len(endpoint.agent_calls("collect alpha")) == 1
    record = await harness.record(workflow_id)
    assert (record.steps[0].status, record.steps[0].attempt) == (StepStatus.COMPLETED, 1)
    assert len(harness.published_of(workflow_id, "step.started")) == 1
    assert len(harness.distinct_ids(workflow_id, "step.completed")) == 1


async def test_a_dead_runners_step_is_taken_over_when_its_lease_lapses(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    workflow_id = await harness.submit(TASK)
    await harness.deliver(harness.take("planner", "workflow.requested"))
    dispatch = harness.take("agent-runner", "step.dispatched")
    now = time.time()
    died = StepStarted(workflow_id=workflow_id, step_id="s1", attempt=1)
    await harness.store.apply(
        machine.start_step(died, owner="dead-runner", lease_until=now + 0.5, now=now)
    )

    await asyncio.wait_for(harness.deliver(dispatch), timeout=10)

    assert time.time() - now >= 0.5  # it waited for the lease, then took over
    record = await harness.record(workflow_id)
    assert (record.steps[0].status, record.steps[0].attempt) == (StepStatus.COMPLETED, 2)
    assert len(endpoint.agent_calls("collect alpha")) == 1


async def test_a_runner_that_lost_its_lease_stops_and_records_nothing(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    endpoint.add_rule(rule({"hang": True}, has_tools=True, last_user_contains="alpha"))
    workflow_id = await harness.submit(TASK)
    await harness.deliver(harness.take("planner", "workflow.requested"))
    running = harness.start(harness.take("agent-runner", "step.dispatched"))
    await wait_until(lambda: len(endpoint.agent_calls("collect alpha")) == 1)

    holder = (await harness.record(workflow_id)).steps[0].owner
    assert holder is not None
    # Its lease is given away behind its back (as if it had lapsed during a pause).
    await harness.store.apply(machine.release_lease(workflow_id, "s1", owner=holder))
    now = time.time()
    other = StepStarted(workflow_id=workflow_id, step_id="s1", attempt=2)
    await harness.store.apply(
        machine.start_step(other, owner="other-runner", lease_until=now + 60, now=now)
    )

    await asyncio.wait_for(running, timeout=5)  # its next renewal is refused: it stops
    record = await harness.record(workflow_id)
    assert (record.steps[0].status, record.steps[0].owner) == (StepStatus.RUNNING, "other-runner")
    assert harness.published_of(workflow_id, "step.completed") == []


# -- the planning lease: one planner per workflow, whatever Kafka delivers ----------------


async def test_a_second_delivery_of_a_request_being_planned_waits_for_the_plan(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    """The request arrives again (a rebalance, the unsent sweep) while the first
    delivery is still planning: the model is asked once. Planning outlasts the
    lease, so only its renewals keep the second delivery waiting."""
    delay_ms = int(harness.planning_lease_s * 1000 * 1.5)
    endpoint.add_rule(rule({"delay_ms": delay_ms}, schema_name=PLAN_FORMAT))
    workflow_id = await harness.submit(TASK)
    request = harness.take("planner", "workflow.requested")
    first = harness.start(request)
    await wait_until(lambda: len(endpoint.planner_calls()) == 1)
    second = harness.start(request)
    await asyncio.wait_for(asyncio.gather(first, second), timeout=20)

    assert len(endpoint.planner_calls()) == 1
    record = await harness.record(workflow_id)
    assert (record.status, record.planning_owner) == (WorkflowStatus.RUNNING, None)
    plans = harness.published_of(workflow_id, "plan.created")
    assert len({e.event_id for e in plans}) == 1  # the waiting delivery sent the same plan
    await harness.run()
    await assert_completed_once(harness, endpoint, workflow_id)


async def test_a_dead_planners_workflow_is_planned_once_its_lease_lapses(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    workflow_id = await harness.submit(TASK)
    request = harness.take("planner", "workflow.requested")
    now = time.time()
    await harness.store.apply(
        machine.start_planning(workflow_id, owner="dead-planner", lease_until=now + 0.5, now=now)
    )

    await asyncio.wait_for(harness.deliver(request), timeout=10)

    assert time.time() - now >= 0.5  # it waited for the lease, then took over
    record = await harness.record(workflow_id)
    assert (record.status, record.planning_owner) == (WorkflowStatus.RUNNING, None)
    await harness.run()
    await assert_completed_once(harness, endpoint, workflow_id)


async def steal_planning(harness: Harness, workflow_id: str) -> None:
    """Give the planning lease to another planner behind its holder's back (as if it
    had lapsed during a long pause and been taken over)."""
    holder = (await harness.record(workflow_id)).planning_owner
    assert holder is not None
    await harness.store.apply(machine.release_planning_lease(workflow_id, owner=holder))
    now = time.time()
    await harness.store.apply(
        machine.start_planning(workflow_id, owner="other-planner", lease_until=now + 60, now=now)
    )


async def assert_planned_by_the_other_planner_only(harness: Harness, workflow_id: str) -> None:
    record = await harness.record(workflow_id)
    assert (record.status, record.planning_owner) == (WorkflowStatus.PLANNING, "other-planner")
    assert record.steps == ()
    assert harness.published_of(workflow_id, "plan.created") == []
    assert harness.published_of(workflow_id, "workflow.failed") == []


async def test_a_planner_that_lost_its_lease_stops_planning(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    endpoint.add_rule(rule({"hang": True}, schema_name=PLAN_FORMAT))
    workflow_id = await harness.submit(TASK)
    planning = harness.start(harness.take("planner", "workflow.requested"))
    await wait_until(lambda: len(endpoint.planner_calls()) == 1)

    await steal_planning(harness, workflow_id)

    await asyncio.wait_for(planning, timeout=5)  # its next renewal is refused: it stops
    await assert_planned_by_the_other_planner_only(harness, workflow_id)


INVALID_PLAN = {"steps": [{"title": "a", "instruction": "x"}, {"title": "b", "instruction": "x"}]}


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({}, id="a valid plan"),
        pytest.param({"json": INVALID_PLAN}, id="a plan that fails planning"),
    ],
)
async def test_a_planner_whose_lease_was_lost_records_no_plan_and_no_failure(
    endpoint: ScriptedEndpoint, answer: dict[str, object]
) -> None:
    """The model answers after the lease was lost but before a renewal noticed: the
    plan (or planning's failure) is fenced off by the lease."""
    endpoint.add_rule(rule({"delay_ms": 300, **answer}, schema_name=PLAN_FORMAT))
    async with Harness(endpoint, planning_lease_s=60).running() as harness:  # no renewal due
        workflow_id = await harness.submit(TASK)
        planning = harness.start(harness.take("planner", "workflow.requested"))
        await wait_until(lambda: len(endpoint.planner_calls()) == 1)

        await steal_planning(harness, workflow_id)

        await asyncio.wait_for(planning, timeout=10)
        assert len(endpoint.planner_calls()) == (1 if not answer else 2)  # one re-plan
        await assert_planned_by_the_other_planner_only(harness, workflow_id)


@pytest.mark.parametrize("how", ["cancelled", "failed"])
async def test_a_planning_delivery_cut_short_lets_its_retry_plan_at_once(
    endpoint: ScriptedEndpoint, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A shutdown or the handler's timeout cancels the delivery; an error fails it.
    Either way its lease is given up, so the retry does not wait for a lease that
    would take a minute to lapse."""
    async with Harness(endpoint, planning_lease_s=60).running() as harness:
        workflow_id = await harness.submit(TASK)
        request = harness.take("planner", "workflow.requested")
        if how == "cancelled":
            endpoint.add_rule(
                Rule.model_validate(
                    {
                        "match": {"schema_name": PLAN_FORMAT},
                        "responses": [{"hang": True}],
                        "repeat_last": False,
                    }
                )
            )
            delivery = harness.start(request)
            await wait_until(lambda: len(endpoint.planner_calls()) == 1)
            delivery.cancel()
            with pytest.raises(asyncio.CancelledError):
                await delivery
        else:
            reserve = harness.budgets.reserve

            async def broken_once(*args: object, **kwargs: object) -> Reservation:
                monkeypatch.setattr(harness.budgets, "reserve", reserve)
                raise RuntimeError("the budget ledger broke")

            monkeypatch.setattr(harness.budgets, "reserve", broken_once)
            with pytest.raises(RuntimeError):
                await harness.deliver(request)
        record = await harness.record(workflow_id)
        assert (record.status, record.planning_owner) == (WorkflowStatus.PLANNING, None)

        await asyncio.wait_for(harness.deliver(request), timeout=10)  # at once
        record = await harness.record(workflow_id)
        assert record.status is WorkflowStatus.RUNNING
        assert len(harness.distinct_ids(workflow_id, "plan.created")) == 1


# -- what a dependency's outcome released or skipped is never lost ------------------------

CHAIN_PLAN = {
    "steps": [
        {"title": "gather facts", "instruction": "gather the facts"},
        {"title": "write summary", "instruction": "summarise the facts", "depends_on": [1]},
    ]
}


def plan_a_chain(endpoint: ScriptedEndpoint) -> None:
    endpoint.add_rule(rule({"json": CHAIN_PLAN}, schema_name="tributary_plan"))


async def test_a_released_step_whose_dispatch_was_lost_is_sent_again(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    plan_a_chain(endpoint)
    harness.crash_after("planner", Move.RELEASE_STEP)  # released in the store, never sent
    workflow_id = await harness.submit("facts, then a summary")
    await harness.run()

    assert harness.crashes == 1
    record = await harness.record(workflow_id)
    assert record.status is WorkflowStatus.COMPLETED
    assert [s.status for s in record.steps] == [StepStatus.COMPLETED] * 2
    assert len(endpoint.agent_calls("write summary")) == 1
    dispatches = harness.published_of(workflow_id, "step.dispatched")
    assert {e.event_id for e in dispatches} == {d.event_id for d in dispatches[:2]}


async def test_a_skipped_step_whose_outcome_was_lost_is_sent_again(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    plan_a_chain(endpoint)
    # The first step's model answers nothing usable: the step fails, its dependent is skipped.
    endpoint.add_rule(rule({"content": ""}, has_tools=True, contains="Your step: gather facts"))
    harness.crash_after("planner", Move.SKIP_STEP)
    workflow_id = await harness.submit("facts, then a summary")
    await harness.run()

    assert harness.crashes == 1
    record = await harness.record(workflow_id)
    assert record.status is WorkflowStatus.FAILED
    assert record.error is not None
    assert record.error.code == "all_steps_failed"
    assert [s.status for s in record.steps] == [StepStatus.FAILED] * 2
    skipped = harness.published_of(workflow_id, "step.failed")
    assert {e.step_id for e in skipped if isinstance(e, StepFailed)} == {"s1", "s2"}
    assert endpoint.agent_calls("write summary") == []


class DedupingMailer:
    """A far side that honours idempotency keys: one mail per key, however often asked."""

    def __init__(self) -> None:
        self.keys: list[str | None] = []
        self.sent: dict[str, str] = {}
        self.first_call_hangs = True
        self.tool = Tool(
            name="send_mail",
            description="Send a mail.",
            args_model=MailArgs,
            run=self._send,
            read_only=False,
        )

    async def _send(self, args: MailArgs) -> str:
        key = current_call_key()
        self.keys.append(key)
        assert key is not None
        self.sent.setdefault(key, args.to)
        if self.first_call_hangs:
            self.first_call_hangs = False
            await asyncio.Event().wait()  # the runner dies while the call is out
        return f"sent to {args.to}"


async def test_a_call_cut_off_by_a_dead_runner_is_made_again_with_the_same_key(
    endpoint: ScriptedEndpoint,
) -> None:
    mailer = DedupingMailer()
    mail_each_step(endpoint)
    async with Harness(endpoint, tools=[mailer.tool]).running() as harness:
        workflow_id = await harness.submit(TASK)
        await harness.deliver(harness.take("planner", "workflow.requested"))
        first_run = harness.start(harness.take("agent-runner", "step.dispatched"))
        await wait_until(lambda: len(mailer.keys) == 1)
        first_run.cancel()  # revoked mid-call
        with pytest.raises(asyncio.CancelledError):
            await first_run
        harness.redeliver(harness.published_of(workflow_id, "step.dispatched")[:1])
        await harness.run()

        record = await harness.record(workflow_id)
        assert record.status is WorkflowStatus.COMPLETED
    # alpha was asked twice with one key; beta and gamma once each with their own.
    assert len(mailer.keys) == 4
    assert mailer.keys.count(mailer.keys[0]) == 2
    assert len(set(mailer.keys)) == 3
    assert len(mailer.sent) == 3  # one mail per logical call


# -- what was written and never sent is sent by the planner's sweep -----------------------


async def test_a_cancel_whose_event_never_left_is_sent_by_the_sweep(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    workflow_id = await harness.submit(TASK)
    await harness.deliver(harness.take("planner", "workflow.requested"))
    harness.crash_before_publishing("gateway", "workflow.cancelled")
    with pytest.raises(Crash):  # Kafka refused it after the cancel was recorded
        await harness.control().cancel(workflow_id, tenant_id="default", reason="user")
    assert harness.published_of(workflow_id, "workflow.cancelled") == []

    await harness.planner.sweep(time.time())  # too soon: its writer may still send it
    assert harness.published_of(workflow_id, "workflow.cancelled") == []
    await harness.planner.sweep(time.time() + 60)
    cancelled = harness.published_of(workflow_id, "workflow.cancelled")
    assert len(cancelled) == 1
    assert cancelled[0].event_id == (await harness.record(workflow_id)).final_event.event_id  # type: ignore[union-attr]
    await harness.planner.sweep(time.time() + 60)  # sent once, then forgotten
    assert len(harness.published_of(workflow_id, "workflow.cancelled")) == 1


async def test_a_request_the_gateway_never_sent_is_sent_by_the_sweep(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    harness.crash_before_publishing("gateway", "workflow.requested")
    with pytest.raises(Crash):  # the gateway died between the write and the publish
        await harness.submit(TASK)
    [workflow_id] = harness.store.records
    assert harness.pending == []
    await harness.planner.sweep(time.time() + 60)
    await harness.run()
    await assert_completed_once(harness, endpoint, workflow_id)


async def test_a_cancel_while_kafka_is_away_is_recorded_and_its_event_follows(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    workflow_id = await harness.submit(TASK)
    await harness.deliver(harness.take("planner", "workflow.requested"))
    harness.refuse_publishing("gateway", "workflow.cancelled")

    assert await harness.control().cancel(workflow_id, tenant_id="default", reason="user")
    record = await harness.record(workflow_id)
    assert record.status is WorkflowStatus.CANCELLED
    assert harness.cancellations.announced == [workflow_id]  # steps told to stop anyway
    assert harness.published_of(workflow_id, "workflow.cancelled") == []

    await harness.planner.sweep(time.time() + 60)  # Kafka is back
    assert len(harness.published_of(workflow_id, "workflow.cancelled")) == 1


async def test_a_redis_blip_mid_step_is_waited_out_without_restarting_the_step(
    endpoint: ScriptedEndpoint, mailbox: Mailbox
) -> None:
    # Status read before every LLM call, so that the blip finds one.
    async with Harness(endpoint, tools=[mailbox.tool], status_recheck_s=0).running() as harness:
        await _blip_mid_step(harness, endpoint, mailbox)


async def _blip_mid_step(harness: Harness, endpoint: ScriptedEndpoint, mailbox: Mailbox) -> None:
    mail_each_step(endpoint)
    endpoint.add_rule(rule({"delay_ms": 200}, has_tool_result=True, last_user_contains="alpha"))
    workflow_id = await harness.submit(TASK)
    await harness.deliver(harness.take("planner", "workflow.requested"))
    running = harness.start(harness.take("agent-runner", "step.dispatched"))
    await wait_until(lambda: len(endpoint.agent_calls("collect alpha")) == 2)
    harness.redis_blip(status_reads=2, history_writes=2)  # while the model answers
    await asyncio.wait_for(running, timeout=20)
    await harness.run()

    assert harness.pending == []
    assert harness.blips_left() == 0  # the blip did hit
    record = await harness.record(workflow_id)
    assert record.status is WorkflowStatus.COMPLETED
    assert [s.attempt for s in record.steps] == [1, 1, 1]  # carried on: none restarted
    for title in TITLES:
        assert len(endpoint.agent_calls(title)) == 2, title
    assert mailbox.sent == ["ops@example.org"] * len(TITLES)


async def test_a_delivery_that_fails_after_taking_the_step_lets_its_retry_in_at_once(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    workflow_id = await harness.submit(TASK)
    await harness.deliver(harness.take("planner", "workflow.requested"))
    dispatch = harness.take("agent-runner", "step.dispatched")
    reserve = harness.budgets.reserve

    async def broken_once(*args: Any, **kwargs: Any) -> Reservation:
        harness.budgets.reserve = reserve  # type: ignore[method-assign]
        raise RuntimeError("a bug on the way to the first LLM call")

    harness.budgets.reserve = broken_once  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):  # the consumer runtime retries the delivery
        await harness.deliver(dispatch)
    assert (await harness.record(workflow_id)).steps[0].owner is None  # let go

    await harness.deliver(dispatch)  # taken over at once, not after the lease lapses
    record = await harness.record(workflow_id)
    assert (record.steps[0].status, record.steps[0].attempt) == (StepStatus.COMPLETED, 2)
    assert len(endpoint.agent_calls("collect alpha")) == 1


async def test_a_sweep_item_that_cannot_finish_leaves_the_rest_of_the_pass_going(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    first = await harness.submit(TASK)
    second = await harness.submit(TASK)
    for _ in (first, second):
        await harness.deliver(harness.take("planner", "workflow.requested"))
    harness.hang_publishing("planner", "workflow.failed")  # Kafka away: publishing waits

    await asyncio.wait_for(harness.planner.sweep(time.time() + 3600), timeout=10)

    for workflow_id in (first, second):  # both past their deadline, both failed
        record = await harness.record(workflow_id)
        assert record.status is WorkflowStatus.FAILED
        assert record.error is not None
        assert record.error.code == "deadline_exceeded"


async def test_a_started_event_lost_with_its_attempt_still_reaches_kafka_by_the_sweep(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    # The step's step.started was written, then Kafka refused it; the step goes on
    # and completes, so no redelivery would ever send it.
    workflow_id = await harness.submit(TASK)
    await harness.deliver(harness.take("planner", "workflow.requested"))
    dispatch = harness.take("agent-runner", "step.dispatched")
    harness.refuse_publishing("agent-runner", "step.started")
    await harness.deliver(dispatch)  # the refusal does not hold the step up
    await harness.run()
    assert [s.attempt for s in (await harness.record(workflow_id)).steps] == [1, 1, 1]
    started = {e.event_id: e for e in harness.published_of(workflow_id, "step.started")}
    logged = {
        json.loads(entry.event_json)["event_id"]
        for entry in await harness.store.read_log(workflow_id, count=1000)
    }
    [lost] = [
        event_id
        for event_id in logged - started.keys()
        if event_id in {n.event_id for n in await harness.store.unsent(time.time() + 60)}
    ]

    await harness.planner.sweep(time.time())  # within the grace: its writer may still send it
    assert lost not in {e.event_id for e in harness.published_of(workflow_id)}
    await harness.planner.sweep(time.time() + 60)
    sent = [e for e in harness.published_of(workflow_id) if e.event_id == lost]
    assert [(e.type, getattr(e, "attempt", None)) for e in sent] == [("step.started", 1)]
    assert logged <= {e.event_id for e in harness.published_of(workflow_id)}  # all left
    assert await harness.store.unsent(time.time() + 60) == []
    await harness.planner.sweep(time.time() + 60)  # sent once, then forgotten
    assert len([e for e in harness.published_of(workflow_id) if e.event_id == lost]) == 1


async def test_a_budget_announcement_kafka_refused_is_sent_by_the_sweep(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    workflow_id = await harness.submit(TASK, token_budget=1)  # no call fits
    harness.refuse_publishing("planner", "budget.exhausted")
    await harness.run()
    record = await harness.record(workflow_id)
    assert record.status is WorkflowStatus.FAILED  # the refusal stood
    assert harness.published_of(workflow_id, "budget.exhausted") == []
    assert "budget.exhausted" in [e.type for e in await harness.store.read_log(workflow_id)]

    await harness.planner.sweep(time.time() + 60)
    [announced] = harness.published_of(workflow_id, "budget.exhausted")
    assert announced.event_id == derived_event_id(workflow_id, "budget.exhausted")
    assert endpoint.requests == []  # the model was never asked


async def test_a_synthesis_held_up_only_by_a_call_in_flight_is_retried_not_cut_short(
    endpoint: ScriptedEndpoint, mailbox: Mailbox
) -> None:
    async with Harness(endpoint, tools=[mailbox.tool], budget_hold_s=0.3).running() as harness:
        workflow_id = await harness.submit(TASK, token_budget=1_000_000)
        while others := [i for i, d in enumerate(harness.pending) if d.service != "synthesizer"]:
            await harness.deliver_pending(others[0])
        used = (await harness.budgets.state(workflow_id)).used_tokens
        in_flight = await harness.budgets.reserve(  # another call holds all but a token
            workflow_id, tenant_id="default", tokens=1_000_000 - used - 1, micro_usd=0, hold_s=3600
        )
        trigger = harness.take("synthesizer", "step.completed")
        while harness.pending:  # all steps are done: the first result starts the synthesis
            trigger = harness.take("synthesizer", "step.completed")
        with pytest.raises(BudgetExceeded) as refused:  # the consumer runtime retries it
            await harness.deliver(trigger)
        assert refused.value.busy
        assert (await harness.record(workflow_id)).status is WorkflowStatus.SYNTHESIZING

        await harness.budgets.settle(
            workflow_id, in_flight.reservation_id, usage=TokenUsage(), micro_usd=0
        )
        await harness.deliver(trigger)
        record = await harness.record(workflow_id)
        assert record.status is WorkflowStatus.COMPLETED
        assert record.partial is False  # the model answered: not the out-of-budget answer


async def test_a_step_reads_its_workflows_status_again_only_when_last_seen_long_ago(
    endpoint: ScriptedEndpoint, mailbox: Mailbox
) -> None:
    # Claimed steps saw the workflow running; within status_recheck_s their LLM calls
    # go without reading it again (the cancellation signal stops them meanwhile).
    mail_each_step(endpoint)
    reads: dict[float, int] = {}
    for recheck_s in (60.0, 0.0):
        async with Harness(
            endpoint, tools=[mailbox.tool], status_recheck_s=recheck_s
        ).running() as harness:
            workflow_id = await harness.submit(TASK)
            await harness.run()
            assert (await harness.record(workflow_id)).status is WorkflowStatus.COMPLETED
            reads[recheck_s] = harness.status_reads
    assert reads[0.0] - reads[60.0] == 6  # before each of 3 steps x 2 LLM calls


async def test_a_step_that_missed_the_cancellation_stops_once_its_status_is_read_again(
    endpoint: ScriptedEndpoint, mailbox: Mailbox
) -> None:
    endpoint.add_rule(
        rule(
            {"delay_ms": 400, "tool_calls": [{"name": "send_mail", "arguments": {"to": "x@y"}}]},
            has_tools=True,
            has_tool_result=False,
            last_user_contains="alpha",
        )
    )
    mail_each_step(endpoint)
    # A long lease: its renewal would find the end too, and this is about the check.
    async with Harness(
        endpoint, tools=[mailbox.tool], status_recheck_s=0.2, step_lease_s=30
    ).running() as harness:
        workflow_id = await harness.submit(TASK)
        await harness.deliver(harness.take("planner", "workflow.requested"))
        running = harness.start(harness.take("agent-runner", "step.dispatched"))
        await wait_until(lambda: len(endpoint.agent_calls("collect alpha")) == 1)
        # Cancelled in the store only: no signal reaches the running step.
        await harness.store.apply(
            machine.cancel(WorkflowCancelled(workflow_id=workflow_id, reason="stop"))
        )
        await asyncio.wait_for(running, timeout=10)
    assert len(endpoint.agent_calls("collect alpha")) == 1  # no call after the end was seen
    assert mailbox.sent == ["x@y"]  # the answer in flight was acted on, nothing more
