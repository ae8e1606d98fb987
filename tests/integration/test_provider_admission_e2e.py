"""One rate limit, one circuit breaker and one fair queue per model deployment, shared by
three agent-runner replicas (and the planner and synthesizer), against the real processes.

Each test counts what the guarantee protects where it happens: requests at the
scripted LLM server (allowed, refused with 429, sent while the breaker is open),
and when each workflow finishes.

Every role uses one model of its own (one deployment) that no other module
uses, and each test starts from a fresh gate: earlier tests' learned limits
and breaker state would otherwise decide for it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from redis.asyncio import Redis

from tests.support.client import GatewayClient
from tests.support.recovery import wait_until_all_end
from tests.support.stack import RunningServices, free_port, start_services
from tributary_devstack.llm_gates import format_gates
from tributary_devstack.process import ServiceProcess
from tributary_devstack.stack import Stack
from tributary_scripted_llm import RATE_LIMITED_RULE_ID, ScriptedLLMAdmin, ScriptedLLMServer
from tributary_shared.core.admission import BreakerState
from tributary_shared.core.keys import DeploymentKeys
from tributary_shared.runtime.llm.admission import RedisDeploymentGate

pytestmark = pytest.mark.integration

MODEL = f"admission-{uuid.uuid4().hex[:8]}"
RATE_LIMIT_RPM = 60
BREAKER_COOLDOWN_S = 2.0


@dataclass
class Deployment:
    """The module's services (three agent-runners) and the LLM server behind them."""

    running: RunningServices
    runners: list[ServiceProcess]
    llm: ScriptedLLMServer
    redis: Redis

    @property
    def admin(self) -> ScriptedLLMAdmin:
        return self.llm.admin

    async def gate_state(self) -> BreakerState:
        return (await RedisDeploymentGate(self.redis).state(MODEL)).breaker


@pytest.fixture(scope="module")
def admission_llm() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer(latency_ms=100) as server:
        yield server


@pytest.fixture(scope="module")
def admission_services(
    exclusive_topics: Stack, admission_llm: ScriptedLLMServer
) -> Iterator[tuple[RunningServices, list[ServiceProcess]]]:
    running = start_services(
        exclusive_topics,
        llm_base_url=admission_llm.base_url,
        label="admission",
        extra_env={
            "TRIBUTARY_PLANNER_MODEL": MODEL,
            "TRIBUTARY_AGENT_MODEL": MODEL,
            "TRIBUTARY_SYNTHESIZER_MODEL": MODEL,
            "TRIBUTARY_FALLBACK_MODEL": MODEL,  # the same model: no fallback to count around
            "TRIBUTARY_PLANNER_MAX_STEPS": "25",
            # Calls wait for their turn without using attempts; the few that fail
            # (a 429 before the limit is learned, a probe) must not end a step.
            "TRIBUTARY_LLM_MAX_ATTEMPTS": "10",
            "TRIBUTARY_LLM_BREAKER_FAILURES": "3",
            "TRIBUTARY_LLM_BREAKER_COOLDOWN_S": str(BREAKER_COOLDOWN_S),
            "TRIBUTARY_LLM_BREAKER_PROBE_LEASE_S": "10",
        },
    )
    runners = [running.process("agent-runner")]
    for index in (2, 3):
        runners.append(
            exclusive_topics.start_service(
                "agent-runner",
                port=free_port(),
                env=running.env,
                instance=f"admission-agent-runner-{index}",
            )
        )
    for runner in runners[1:]:
        runner.wait_healthy(timeout=60)
    yield running, runners
    for runner in runners[1:]:
        runner.terminate(grace=10)
    running.stop()


@pytest.fixture
async def deployment(
    admission_services: tuple[RunningServices, list[ServiceProcess]],
    admission_llm: ScriptedLLMServer,
) -> AsyncIterator[Deployment]:
    running, runners = admission_services
    redis = Redis.from_url(f"redis://127.0.0.1:{running.stack.config.redis_port}/0")
    # A fresh gate: nothing learned, nothing owed, the breaker closed.
    async for key in redis.scan_iter(match=f"{DeploymentKeys(MODEL).prefix}*"):
        await redis.delete(key)
    admission_llm.admin.reset()
    yield Deployment(running, runners, admission_llm, redis)
    admission_llm.admin.reset()
    await redis.aclose()


@pytest.fixture
async def client(deployment: Deployment, api_key: str) -> AsyncIterator[GatewayClient]:
    gateway = GatewayClient(deployment.running.gateway_url, api_key)
    yield gateway
    await gateway.aclose()


def notes(count: int, marker: str, name: str = "note") -> str:
    """A task the scripted planner splits into ``count`` steps of one LLM call each
    (nothing in it reads as arithmetic, which would add a calculator round)."""
    return "; ".join(f"{name} {index} {marker}" for index in range(count))


async def test_three_replicas_keep_to_the_providers_limit_with_a_handful_of_429s(
    deployment: Deployment, client: GatewayClient, marker: str
) -> None:
    deployment.admin.set_rate_limit(RATE_LIMIT_RPM)
    # 8 workflows of 8 one-call steps: 80 calls with planning and synthesis, more
    # than the minute's 60 at once plus one a second for the ~20 s they take.
    ids = [await client.start(notes(8, f"{marker}w{w}")) for w in range(8)]
    states = await wait_until_all_end(client, ids, within=120)
    assert {state["status"] for state in states.values()} == {"completed"}
    stats = deployment.admin.rate_limit()
    # A handful, not a storm: the calls already on their way when the provider's bucket
    # runs dry are answered 429 before the pause it starts reaches every replica (how
    # many depends on how the three replicas' calls interleave: up to 7 seen); a stack
    # that ignored the 429s would draw dozens.
    assert stats.refused <= 10, f"{stats.refused} calls were answered 429"
    answered = sorted(
        r.timestamp for r in deployment.admin.requests() if r.rule_id != RATE_LIMITED_RULE_ID
    )
    assert len(answered) == stats.allowed == 8 * 10
    # Close to the limit: the provider would have taken its minute's 60 at once and
    # one a second after; the stack's calls went nearly as fast as that allows.
    window_s = answered[-1] - answered[0]
    allowance = RATE_LIMIT_RPM + window_s * RATE_LIMIT_RPM / 60
    assert len(answered) >= 0.75 * allowance, f"{len(answered)} calls in {window_s:.1f} s"
    busy = [r for r in deployment.runners if "step step.completed" in r.log_path.read_text()]
    assert len(busy) >= 2, "the replicas did not share the work"


async def finished_at(client: GatewayClient, workflow_id: str) -> float:
    events = await client.follow(workflow_id, read_timeout=90)
    assert events[-1].type == "workflow.completed", events[-1]
    return time.monotonic()


async def test_a_one_step_workflow_is_not_stuck_behind_a_twenty_step_one(
    deployment: Deployment, client: GatewayClient, marker: str
) -> None:
    # One call a second, none at once: every call waits its turn in the shared queue.
    deployment.admin.set_rate_limit(RATE_LIMIT_RPM, burst=1)
    started = time.monotonic()
    large = await client.start(notes(20, f"{marker}large"))
    small = await client.start(notes(1, f"{marker}small"))
    large_done, small_done = await asyncio.gather(
        finished_at(client, large), finished_at(client, small)
    )
    assert len((await client.get(large))["steps"]) == 20
    # In arrival order the small one's step would wait behind all twenty; taking
    # turns, it is done while the large one is still at its first steps.
    assert small_done - started < 0.5 * (large_done - started), (
        f"small done after {small_done - started:.1f} s, large after {large_done - started:.1f} s"
    )


async def breaker_metric(process: ServiceProcess) -> str:
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(f"{process.url}/metrics")).text
    lines = [
        line
        for line in text.splitlines()
        if line.startswith("llm_breaker_state{") and f'deployment="{MODEL}"' in line
    ]
    return next((line for line in lines if line.endswith(" 1.0")), "")


async def test_an_open_breaker_stops_every_replica_and_one_probe_reopens_it(
    deployment: Deployment, client: GatewayClient, marker: str
) -> None:
    # The endpoint fails every agent call (the plans go through first).
    down = deployment.admin.add_rule(has_tools=True, responses=[{"status": 503}])
    ids = [await client.start(notes(4, f"{marker}w{w}")) for w in range(2)]
    for _ in range(300):
        if await deployment.gate_state() is BreakerState.OPEN:
            break
        await asyncio.sleep(0.1)
    assert await deployment.gate_state() is BreakerState.OPEN
    await asyncio.sleep(0.5)  # calls sent just before it opened may still arrive
    watched_from = time.time()
    await asyncio.sleep(8)
    watched_until = time.time()
    # Visible where operators look: each replica's metrics and `make status`.
    seen = [await breaker_metric(runner) for runner in deployment.runners]
    assert any('state="open"' in line or 'state="half_open"' in line for line in seen), seen
    status = format_gates([(MODEL, await RedisDeploymentGate(deployment.redis).state(MODEL))])
    assert MODEL in status
    deployment.admin.delete_rule(down)
    while_down = [
        r
        for r in deployment.admin.requests(rule_id=down)
        if watched_from <= r.timestamp <= watched_until
    ]
    # Eight calls waiting on three replicas sent nothing but one probe per cool-down.
    most_probes = (watched_until - watched_from) / BREAKER_COOLDOWN_S + 1
    assert len(while_down) <= most_probes, f"{len(while_down)} calls while open"
    states = await wait_until_all_end(client, ids, within=60)
    for state in states.values():
        assert state["status"] == "completed", state.get("error")
        steps = state["steps"]
        assert isinstance(steps, list)
        assert [step["status"] for step in steps] == ["completed"] * 4
    assert await deployment.gate_state() is BreakerState.CLOSED
