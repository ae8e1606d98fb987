"""A side-effecting MCP tool acts once per logical call, through a kill -9 of the agent-runner.

The tool is ``send_payment`` of ``tests/fixtures/mcp/payments_server.py``, a
real MCP server over HTTP in its own process. Like a well-behaved payment
service it pays once per idempotency key, and it counts what it saw: every
request with its key, and every payment made. Each workflow pays a deposit,
then (a dependent step) the balance; the scripted LLM makes each step's agent
call the tool once, then answer from its result.

The agent-runner is killed, with status 137 as kill -9 leaves it, at the two
points where a lost effect or a repeated one would hide (failpoints in the
agent loop, ``TRIBUTARY_FAILPOINTS``): right after the payment returned and
before the effect ledger recorded it, and right after it was recorded and
before the step's outcome. Restarted without the failpoint, it takes the
step over (attempt 2). Whatever the point, each payment is made once; a
repeated request carries the first one's key; and the model is asked as a
step taken over asks it: the dead attempt's one call, then one whole run.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.client import GatewayClient
from tests.support.history import assert_histories_hold
from tests.support.lag import wait_until_handled
from tests.support.mcp_servers import PAYMENTS_SERVER, http_fixture_server, payment_effects
from tests.support.recovery import (
    CALLS_PER_RUN,
    agent_calls_per_step,
    assert_steps_ran_once_per_attempt,
    wait_until_all_end,
)
from tests.support.stack import WORKERS, RunningServices, start_services, until_dead
from tributary_devstack.stack import Stack
from tributary_scripted_llm import ScriptedLLMAdmin, ScriptedLLMServer
from tributary_shared.runtime.failpoints import KILLED_EXIT_STATUS

pytestmark = pytest.mark.integration

TOOL = "payments__send_payment"
STEPS = ("pay the deposit", "pay the balance")
PLAN = {
    "steps": [
        {"title": STEPS[0], "instruction": "pay the order's deposit"},
        {"title": STEPS[1], "instruction": "pay the order's balance", "depends_on": [1]},
    ]
}


@pytest.fixture(scope="module")
def payments_port() -> Iterator[int]:
    with http_fixture_server(PAYMENTS_SERVER) as port:
        yield port


@pytest.fixture(scope="module")
def paying_services(
    exclusive_topics: Stack, llm: ScriptedLLMServer, payments_port: int
) -> Iterator[RunningServices]:
    server = {
        "name": "payments",
        "transport": "streamable_http",
        "url": f"http://127.0.0.1:{payments_port}/mcp",
        "timeout_s": 10,
    }
    running = start_services(
        exclusive_topics,
        llm_base_url=llm.base_url,
        label="effects",
        # A killed runner's step is taken over once its lease lapses: keep that short.
        extra_env={
            "TRIBUTARY_MCP_SERVERS": json.dumps([server]),
            "TRIBUTARY_AGENT_STEP_LEASE_S": "3",
        },
    )
    yield running
    running.stop()


@pytest.fixture
async def client(paying_services: RunningServices, api_key: str) -> AsyncIterator[GatewayClient]:
    gateway = GatewayClient(paying_services.gateway_url, api_key)
    yield gateway
    await gateway.aclose()


def payment_id(marker: str, order: int, step: str) -> str:
    return f"{marker}-order{order}-{step.split()[-1]}"


def script_payments(admin: ScriptedLLMAdmin, marker: str, orders: range) -> list[str]:
    """Each order's steps pay once each, then answer from the receipt; returns the tasks."""
    admin.add_rule(contains=marker, schema_name="tributary_plan", responses=[{"json": PLAN}])
    tasks = []
    for order in orders:
        task = f"settle order {order} {marker}"
        tasks.append(task)
        for step in STEPS:
            arguments = {"payment_id": payment_id(marker, order, step), "amount": 10 * (order + 1)}
            call = {"name": TOOL, "arguments": arguments}
            admin.add_rule(
                contains=f"for context only: {task}",
                last_user_contains=f"Your step: {step}\n",
                has_tools=True,
                has_tool_result=False,  # after the result, the automatic answer quotes it
                responses=[{"tool_calls": [call]}],
            )
    return tasks


async def restart_runner(running: RunningServices, *, failpoint: str | None) -> None:
    if failpoint is None:
        running.env.pop("TRIBUTARY_FAILPOINTS", None)
    else:
        running.env["TRIBUTARY_FAILPOINTS"] = failpoint
    await asyncio.to_thread(running.start, "agent-runner")


async def test_without_a_kill_each_payment_is_requested_once(
    paying_services: RunningServices,
    client: GatewayClient,
    llm_admin: ScriptedLLMAdmin,
    payments_port: int,
    marker: str,
) -> None:
    tasks = script_payments(llm_admin, marker, range(3))
    ids = [await client.start(task) for task in tasks]
    states = await wait_until_all_end(client, ids, within=120)

    effects = await payment_effects(payments_port)
    keys = set()
    for order, workflow_id in enumerate(ids):
        state = states[workflow_id]
        assert state["status"] == "completed", (workflow_id, state.get("error"))
        records = state["steps"]
        assert isinstance(records, list)
        for step, record in zip(STEPS, records, strict=True):
            assert record["attempt"] == 1
            requests = effects.requests_for(payment_id(marker, order, step))
            payments = effects.payments_for(payment_id(marker, order, step))
            assert len(requests) == 1, requests
            assert len(payments) == 1, payments
            assert requests[0].key is not None
            keys.add(requests[0].key)
            assert str(payments[0].receipt) in record["result"]  # what the model was given
    assert len(keys) == 2 * len(ids)  # one key per logical call
    assert_steps_ran_once_per_attempt(llm_admin, states)


@pytest.mark.parametrize(
    ("failpoint", "deposit_requests"),
    [
        # Paid, not recorded: the next attempt asks again, with the same key, and is not paid twice.
        ("agent-runner.after_effect", 2),
        # Paid and recorded: the next attempt takes the recorded receipt and does not ask.
        ("agent-runner.after_effect_recorded", 1),
    ],
)
async def test_a_runner_killed_around_a_payment_pays_it_once(
    paying_services: RunningServices,
    client: GatewayClient,
    llm_admin: ScriptedLLMAdmin,
    payments_port: int,
    marker: str,
    failpoint: str,
    deposit_requests: int,
) -> None:
    stack = paying_services.stack
    bootstrap = f"127.0.0.1:{stack.config.kafka_port}"
    # Work an earlier test left unfinished must not be what trips the failpoint.
    await wait_until_handled(bootstrap, WORKERS)
    await restart_runner(paying_services, failpoint=failpoint)
    deposit, balance = (payment_id(marker, 0, step) for step in STEPS)
    try:
        (task,) = script_payments(llm_admin, marker, range(1))
        workflow_id = await client.start(task)

        runner = paying_services.process("agent-runner")
        await until_dead(runner)
        assert runner.exit_reason() == f"its process exited with code {KILLED_EXIT_STATUS}"
        assert f"failpoint {failpoint} hit" in runner.log_path.read_text().rsplit("===== ", 1)[-1]
        at_kill = await payment_effects(payments_port)
        assert len(at_kill.requests_for(deposit)) == len(at_kill.payments_for(deposit)) == 1

        await restart_runner(paying_services, failpoint=None)
        states = await wait_until_all_end(client, [workflow_id], within=120)
    finally:
        if "TRIBUTARY_FAILPOINTS" in paying_services.env:
            await restart_runner(paying_services, failpoint=None)

    state = states[workflow_id]
    assert state["status"] == "completed", state.get("error")
    steps = state["steps"]
    assert isinstance(steps, list)
    assert [(s["step_id"], s["status"], s["attempt"]) for s in steps] == [
        ("s1", "completed", 2),
        ("s2", "completed", 1),
    ]
    effects = await payment_effects(payments_port)
    requests = effects.requests_for(deposit)
    assert len(requests) == deposit_requests, requests
    assert requests[0].key is not None
    assert {r.key for r in requests} == {requests[0].key}
    (paid,) = effects.payments_for(deposit)
    assert str(paid.receipt) in steps[0]["result"]
    assert len(effects.requests_for(balance)) == len(effects.payments_for(balance)) == 1
    assert effects.requests_for(balance)[0].key not in {None, requests[0].key}

    # The dead attempt asked the model once (for the payment); the next ran whole.
    # The dependent step, never interrupted, ran once.
    assert agent_calls_per_step(llm_admin, state) == {
        "s1": 1 + CALLS_PER_RUN,
        "s2": CALLS_PER_RUN,
    }
    await assert_histories_hold(
        bootstrap, f"redis://127.0.0.1:{stack.config.redis_port}/0", [workflow_id]
    )
