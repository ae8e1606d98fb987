"""Failpoints: armed only from the setting, exiting like kill -9, and placed where they say."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import BaseModel

from tests.support.harness import Crash, Harness
from tests.support.scripted import ScriptedEndpoint, rule
from tributary_agent_runner.tools.idempotency import current_call_key
from tributary_agent_runner.tools.registry import Tool
from tributary_shared.core.status import StepStatus, WorkflowStatus
from tributary_shared.runtime import failpoints
from tributary_shared.runtime.failpoints import (
    KILLED_EXIT_STATUS,
    POINTS,
    FailpointSettings,
    UnknownFailpointError,
)
from tributary_shared.runtime.settings import ConfigurationError, load_settings

AFTER_RELEASE = "planner.after_release"


@pytest.fixture(autouse=True)
def disarmed() -> Iterator[None]:
    failpoints.arm(())
    yield
    failpoints.arm(())


def test_nothing_is_armed_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRIBUTARY_FAILPOINTS", raising=False)
    assert load_settings(FailpointSettings).armed == frozenset()
    failpoints.hit(AFTER_RELEASE)  # unarmed: returns, the test goes on


def test_the_setting_names_the_points_to_arm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIBUTARY_FAILPOINTS", f" {AFTER_RELEASE} ,")
    assert load_settings(FailpointSettings).armed == {AFTER_RELEASE}


def test_an_unknown_point_stops_the_service_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIBUTARY_FAILPOINTS", "planner.after_relase")
    with pytest.raises(ConfigurationError, match=r"TRIBUTARY_FAILPOINTS.*planner\.after_relase"):
        load_settings(FailpointSettings)


def test_unknown_names_are_refused_when_arming_and_hitting() -> None:
    with pytest.raises(UnknownFailpointError, match=r"known: .*planner\.after_release"):
        failpoints.arm(["nowhere"])
    assert failpoints.armed() == frozenset()
    with pytest.raises(UnknownFailpointError):
        failpoints.hit("nowhere")  # a misspelt point would otherwise never fire


def test_every_point_is_documented_in_the_setting() -> None:
    description = FailpointSettings.model_fields["failpoints"].description or ""
    assert all(f"`{name}`" in description for name in POINTS)


def test_an_armed_point_exits_at_once_with_the_status_of_kill_9() -> None:
    program = textwrap.dedent(
        f"""
        import sys
        from tributary_shared.runtime import failpoints
        failpoints.arm([{AFTER_RELEASE!r}])
        try:
            print("before", flush=True)
            failpoints.hit({AFTER_RELEASE!r})
            print("after", flush=True)
        finally:
            print("finally", flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == KILLED_EXIT_STATUS == 137
    # No cleanup runs, as with a real kill.
    assert done.stdout.split() == ["before"]


# -- the planner's point, on the real handlers (tests/support/harness.py) -------------------

CHAIN_PLAN = {
    "steps": [
        {"title": "gather facts", "instruction": "gather the facts"},
        {"title": "write summary", "instruction": "summarise the facts", "depends_on": [1]},
    ]
}


@pytest.fixture
async def endpoint() -> AsyncIterator[ScriptedEndpoint]:
    scripted = ScriptedEndpoint(rule({"json": CHAIN_PLAN}, schema_name="tributary_plan"))
    yield scripted
    await scripted.aclose()


async def test_the_planner_point_lies_between_the_release_and_its_publish(
    endpoint: ScriptedEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen_at_exit: list[tuple[StepStatus, list[str]]] = []

    async with Harness(endpoint).running() as harness:

        def die(status: int) -> None:
            assert status == KILLED_EXIT_STATUS
            record = harness.store.records["wf_1"]
            published = [e.type for e in harness.published_of("wf_1", "step.dispatched")]
            seen_at_exit.append((record.steps[1].status, published))
            failpoints.arm(())  # the restarted planner runs without it
            raise Crash

        monkeypatch.setattr(os, "_exit", die)
        failpoints.arm([AFTER_RELEASE])
        workflow_id = await harness.submit("facts, then a summary")
        await harness.run()

        # Released in the store, its dispatch not yet sent: only the first step's went out.
        assert seen_at_exit == [(StepStatus.PENDING, ["step.dispatched"])]
        record = await harness.record(workflow_id)
        assert record.status is WorkflowStatus.COMPLETED
        assert [len(endpoint.agent_calls(s.title)) for s in record.steps] == [1, 1]


# -- the agent-runner's points, around the effect ledger ----------------------------------


class PaymentArgs(BaseModel):
    payment_id: str


@pytest.mark.parametrize(
    ("point", "recorded_at_exit", "requests"),
    [("agent-runner.after_effect", False, 2), ("agent-runner.after_effect_recorded", True, 1)],
)
async def test_the_agent_runner_points_lie_around_the_effect_ledger(
    monkeypatch: pytest.MonkeyPatch, point: str, recorded_at_exit: bool, requests: int
) -> None:
    keys: list[str | None] = []

    async def pay(args: PaymentArgs) -> str:
        keys.append(current_call_key())
        return f"paid {args.payment_id}"

    payments = Tool(
        name="send_payment", description="Pay.", args_model=PaymentArgs, run=pay, read_only=False
    )
    scripted = ScriptedEndpoint(
        rule(
            {"tool_calls": [{"name": "send_payment", "arguments": {"payment_id": "p1"}}]},
            has_tools=True,
            has_tool_result=False,
        )
    )
    seen_at_exit: list[tuple[int, bool, StepStatus]] = []
    try:
        async with Harness(scripted, tools=[payments]).running() as harness:

            def die(status: int) -> None:
                assert status == KILLED_EXIT_STATUS
                step = harness.store.records["wf_1"].steps[0]
                seen_at_exit.append((len(keys), bool(harness.effects.effects), step.status))
                failpoints.arm(())  # the restarted runner runs without it
                raise Crash

            monkeypatch.setattr(os, "_exit", die)
            failpoints.arm([point])
            workflow_id = await harness.submit("pay p1")
            await harness.run()

            # The call was made; its result recorded or not; the step not finished either way.
            assert seen_at_exit == [(1, recorded_at_exit, StepStatus.RUNNING)]
            record = await harness.record(workflow_id)
            assert record.status is WorkflowStatus.COMPLETED
            assert record.steps[0].attempt == 2
    finally:
        await scripted.aclose()
    # Called again only when the result was not recorded, and then with the same key.
    assert len(keys) == requests
    assert len(set(keys)) == 1
    assert keys[0] is not None
