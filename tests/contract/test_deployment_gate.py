"""The deployment gate contract: one breaker, one rate limiter and one fair queue per
deployment, shared by every replica; the twin and ``gate.lua`` agree on each step.

Time is a clock the test moves (the Redis adapter sends it to the script), so the
pacing is computed, never waited for.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from tributary_devstack.stack import Stack
from tributary_shared.core.admission import (
    BreakerPolicy,
    BreakerState,
    CallOutcome,
    GatePolicy,
    Grant,
    Pumped,
    RateLimitObservation,
    RateLimits,
    Ticket,
    stride_for,
)
from tributary_shared.core.ports import DeploymentGate
from tributary_shared.runtime.llm.admission import RedisDeploymentGate
from tributary_shared.twins import MemoryDeploymentGate

T0 = 1_700_000_000.25
"""A realistic epoch time with a fraction: floats must survive the trip through Lua."""
BREAKER = BreakerPolicy(failures_to_open=3, cooldown_s=10.0, probe_lease_s=30.0)
UNLIMITED = GatePolicy(breaker=BREAKER)
NO_ANSWER = RateLimitObservation()


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Gate:
    """The gate under test, one deployment of it, and calls made on behalf of replicas."""

    port: DeploymentGate
    clock: Clock
    deployment: str

    async def ask(
        self,
        name: str,
        *,
        workflow: str = "wf",
        tenant: str = "acme",
        replica: str = "r1",
        tokens: int = 0,
        weight: float = 1.0,
        policy: GatePolicy = UNLIMITED,
    ) -> Pumped:
        ticket = Ticket(
            ticket_id=name,
            tenant_id=tenant,
            workflow_id=workflow,
            replica=replica,
            tokens=tokens,
            stride=stride_for(weight),
        )
        return await self.port.enqueue(self.deployment, ticket, policy=policy)

    async def pump(self, replica: str = "r1", policy: GatePolicy = UNLIMITED) -> Pumped:
        return await self.port.pump(self.deployment, replica=replica, policy=policy)

    async def ended(
        self,
        name: str,
        outcome: CallOutcome,
        observation: RateLimitObservation = NO_ANSWER,
        *,
        replica: str = "r1",
        policy: GatePolicy = UNLIMITED,
    ) -> Pumped:
        return await self.port.report(
            self.deployment,
            replica=replica,
            ticket_id=name,
            outcome=outcome,
            observation=observation,
            policy=policy,
        )

    async def granted_in_turn(self, steps: int, step_s: float, policy: GatePolicy) -> list[str]:
        """Who is admitted, pumping every ``step_s`` seconds ``steps`` times."""
        order: list[str] = []
        for _ in range(steps):
            order += names(await self.pump(policy=policy))
            self.clock.advance(step_s)
        return order


def names(pumped: Pumped) -> list[str]:
    return [grant.ticket_id for grant in pumped.granted]


@pytest.fixture
async def gate(backend: str, request: pytest.FixtureRequest) -> AsyncIterator[Gate]:
    clock = Clock()
    deployment = f"model-{uuid.uuid4().hex[:8]}"
    if backend == "memory":
        yield Gate(MemoryDeploymentGate(clock=clock), clock, deployment)
        return
    stack: Stack = request.getfixturevalue("stack")
    redis = Redis.from_url(f"redis://127.0.0.1:{stack.config.redis_port}/0")
    yield Gate(RedisDeploymentGate(redis, clock=clock, ttl_s=600), clock, deployment)
    await redis.aclose()


async def open_breaker(gate: Gate) -> None:
    for name in ("o1", "o2", "o3"):
        assert names(await gate.ask(name)) == [name]
    for name in ("o1", "o2", "o3"):
        await gate.ended(name, CallOutcome.OUTAGE)


# --- the breaker ---------------------------------------------------------------------


async def test_outages_in_a_row_open_the_breaker_and_nobody_is_admitted(gate: Gate) -> None:
    assert names(await gate.ask("a")) == ["a"]
    await gate.ended("a", CallOutcome.OUTAGE)
    assert names(await gate.ask("b")) == ["b"]
    await gate.ended("b", CallOutcome.OK)  # an answer breaks the run
    await open_breaker(gate)
    waiting = await gate.ask("c", replica="r2")
    assert waiting.granted == ()
    assert waiting.state.breaker is BreakerState.OPEN
    assert waiting.retry_in_s == pytest.approx(BREAKER.cooldown_s)
    gate.clock.advance(9.0)
    still = await gate.pump("r1")
    assert still.granted == ()
    assert still.retry_in_s == pytest.approx(1.0)
    assert still.state.waiting == 1


async def test_after_the_cooldown_exactly_one_call_probes_and_its_success_frees_everyone(
    gate: Gate,
) -> None:
    await open_breaker(gate)
    for index, replica in enumerate(("r1", "r2", "r3", "r1")):
        await gate.ask(f"w{index}", replica=replica, workflow=f"wf{index}")
    gate.clock.advance(BREAKER.cooldown_s)
    first = await gate.pump("r2")
    assert first.granted == (Grant("w0", "r1", probe=True),)
    assert first.state.breaker is BreakerState.HALF_OPEN
    for replica in ("r1", "r2", "r3"):  # every replica pumping: still the one probe
        again = await gate.pump(replica)
        assert again.granted == ()
        assert again.retry_in_s == pytest.approx(BREAKER.probe_lease_s)
    closed = await gate.ended("w0", CallOutcome.OK)
    assert closed.state.breaker is BreakerState.CLOSED
    assert sorted(names(closed)) == ["w1", "w2", "w3"]


async def test_a_failed_probe_opens_the_breaker_again_for_another_cooldown(gate: Gate) -> None:
    await open_breaker(gate)
    await gate.ask("p")
    await gate.ask("q", workflow="other")
    gate.clock.advance(BREAKER.cooldown_s)
    assert (await gate.pump()).granted == (Grant("p", "r1", probe=True),)
    reopened = await gate.ended("p", CallOutcome.OUTAGE)
    assert reopened.state.breaker is BreakerState.OPEN
    assert reopened.granted == ()
    assert reopened.retry_in_s == pytest.approx(BREAKER.cooldown_s)
    gate.clock.advance(BREAKER.cooldown_s)
    assert (await gate.pump()).granted == (Grant("q", "r1", probe=True),)


async def test_a_probe_whose_lease_lapses_is_replaced_and_its_late_result_counts_for_nothing(
    gate: Gate,
) -> None:
    await open_breaker(gate)
    await gate.ask("p", replica="dying")
    await gate.ask("q", workflow="other")
    gate.clock.advance(BREAKER.cooldown_s)
    assert names(await gate.pump()) == ["p"]
    gate.clock.advance(BREAKER.probe_lease_s - 1)
    assert (await gate.pump()).granted == ()
    gate.clock.advance(1)
    replaced = await gate.pump()
    assert replaced.granted == (Grant("q", "r1", probe=True),)
    late = await gate.ended("p", CallOutcome.OK, replica="r1")
    assert late.state.breaker is BreakerState.HALF_OPEN


async def test_an_abandoned_probe_lets_the_next_call_probe_at_once(gate: Gate) -> None:
    await open_breaker(gate)
    await gate.ask("p")
    await gate.ask("q", workflow="other")
    gate.clock.advance(BREAKER.cooldown_s)
    assert names(await gate.pump()) == ["p"]
    after = await gate.ended("p", CallOutcome.ABANDONED)
    assert after.granted == (Grant("q", "r1", probe=True),)


async def test_results_of_calls_sent_before_it_opened_change_nothing(gate: Gate) -> None:
    for name in ("o1", "o2", "o3", "late"):
        await gate.ask(name)
    for name in ("o1", "o2", "o3"):
        await gate.ended(name, CallOutcome.OUTAGE)
    after = await gate.ended("late", CallOutcome.OK)
    assert after.state.breaker is BreakerState.OPEN


async def test_answers_and_rate_limits_show_the_endpoint_up(gate: Gate) -> None:
    for name in ("a", "b", "c", "d", "e"):
        await gate.ask(name)
    await gate.ended("a", CallOutcome.OUTAGE)
    await gate.ended("b", CallOutcome.OUTAGE)
    await gate.ended("c", CallOutcome.RATE_LIMITED)
    await gate.ended("d", CallOutcome.OUTAGE)
    after = await gate.ended("e", CallOutcome.ANSWERED)
    assert after.state.breaker is BreakerState.CLOSED
    assert after.state.failures == 0


async def test_a_breaker_without_a_threshold_never_opens(gate: Gate) -> None:
    never = GatePolicy(breaker=BreakerPolicy(failures_to_open=0))
    for index in range(10):
        await gate.ask(f"c{index}", policy=never)
        after = await gate.ended(f"c{index}", CallOutcome.OUTAGE, policy=never)
    assert after.state.breaker is BreakerState.CLOSED


# --- the rate limiter ----------------------------------------------------------------


async def test_a_minute_of_requests_goes_at_once_then_one_per_interval(gate: Gate) -> None:
    per_minute = GatePolicy(limits=RateLimits(requests_per_minute=60), breaker=BREAKER)
    for index in range(60):
        assert names(await gate.ask(f"c{index}", policy=per_minute)) == [f"c{index}"]
    over = await gate.ask("over", policy=per_minute)
    assert over.granted == ()
    assert over.retry_in_s == pytest.approx(1.0)
    gate.clock.advance(0.5)
    assert (await gate.pump(policy=per_minute)).retry_in_s == pytest.approx(0.5)
    gate.clock.advance(0.5)
    assert names(await gate.pump(policy=per_minute)) == ["over"]


async def test_a_short_burst_spreads_calls_out_evenly(gate: Gate) -> None:
    paced = GatePolicy(limits=RateLimits(requests_per_minute=120), burst_s=1.0, breaker=BREAKER)
    for index in range(6):
        await gate.ask(f"c{index}", policy=paced)
    assert (await gate.port.state(gate.deployment)).waiting == 4  # two fit in a 1 s burst
    # Then one every half second: the steady rate of 120 a minute.
    gate.clock.advance(0.5)
    assert await gate.granted_in_turn(4, 0.5, paced) == ["c2", "c3", "c4", "c5"]


async def test_tokens_per_minute_pace_calls_by_their_estimated_size(gate: Gate) -> None:
    tokens = GatePolicy(limits=RateLimits(tokens_per_minute=6000), breaker=BREAKER)
    assert names(await gate.ask("big", tokens=5000, policy=tokens)) == ["big"]
    second = await gate.ask("next", tokens=2000, policy=tokens)
    assert second.granted == ()
    assert second.retry_in_s == pytest.approx(10.0)  # 1000 tokens over the minute = 10 s
    gate.clock.advance(10.0)
    assert names(await gate.pump(policy=tokens)) == ["next"]


async def test_a_call_larger_than_the_limit_waits_until_nothing_is_owed_then_goes(
    gate: Gate,
) -> None:
    tokens = GatePolicy(limits=RateLimits(tokens_per_minute=1000), breaker=BREAKER)
    assert names(await gate.ask("small", tokens=500, policy=tokens)) == ["small"]
    huge = await gate.ask("huge", tokens=3000, policy=tokens)
    assert huge.retry_in_s == pytest.approx(30.0)
    gate.clock.advance(30.0)
    assert names(await gate.pump(policy=tokens)) == ["huge"]


async def test_limits_learned_from_headers_pace_everyone_but_never_loosen_the_configured(
    gate: Gate,
) -> None:
    assert names(await gate.ask("first")) == ["first"]
    said = RateLimitObservation(limits=RateLimits(requests_per_minute=60), remaining_requests=1)
    learned = await gate.ended("first", CallOutcome.OK, said)
    assert learned.state.limits == RateLimits(requests_per_minute=60)
    assert names(await gate.ask("second", replica="r2")) == ["second"]
    third = await gate.ask("third", replica="r3")
    assert third.retry_in_s == pytest.approx(1.0)  # the provider had one left, now none
    tighter = GatePolicy(limits=RateLimits(requests_per_minute=30), breaker=BREAKER)
    assert (await gate.pump(policy=tighter)).state.limits == RateLimits(requests_per_minute=30)
    looser = RateLimitObservation(limits=RateLimits(requests_per_minute=600))
    later = await gate.ended("second", CallOutcome.OK, looser, policy=tighter)
    assert later.state.limits == RateLimits(requests_per_minute=30)
    assert later.state.learned == RateLimits(requests_per_minute=600)


async def test_learned_limits_lapse_an_hour_after_the_last_response_announced_them(
    gate: Gate,
) -> None:
    await gate.ask("first")
    said = RateLimitObservation(limits=RateLimits(requests_per_minute=60, tokens_per_minute=9000))
    await gate.ended("first", CallOutcome.OK, said)
    gate.clock.advance(3599)
    assert (await gate.pump()).state.learned == RateLimits(60, 9000)
    gate.clock.advance(1)
    assert (await gate.pump()).state.limits == RateLimits()


async def test_a_429_pauses_the_deployment_for_everyone_for_its_retry_after(gate: Gate) -> None:
    await gate.ask("first")
    paused = await gate.ended(
        "first", CallOutcome.RATE_LIMITED, RateLimitObservation(retry_after_s=5.0)
    )
    assert paused.state.paused_until == pytest.approx(T0 + 5.0)
    for replica in ("r1", "r2"):
        held = await gate.ask(f"on-{replica}", replica=replica, workflow=replica)
        assert held.granted == ()
        assert held.retry_in_s == pytest.approx(5.0)
    gate.clock.advance(5.0)
    assert sorted(names(await gate.pump())) == ["on-r1", "on-r2"]


async def test_a_429_without_retry_after_pauses_for_a_second(gate: Gate) -> None:
    await gate.ask("first")
    await gate.ended("first", CallOutcome.RATE_LIMITED)
    assert (await gate.ask("next")).retry_in_s == pytest.approx(1.0)


# --- fair order ----------------------------------------------------------------------


ONE_PER_SECOND = GatePolicy(limits=RateLimits(requests_per_minute=60), burst_s=1.0)


async def pause(gate: Gate) -> None:
    """Hold every call for ten seconds, so a queue builds up in the order of asking."""
    await gate.ask("pause", policy=ONE_PER_SECOND)
    await gate.ended(
        "pause",
        CallOutcome.RATE_LIMITED,
        RateLimitObservation(retry_after_s=10.0),
        policy=ONE_PER_SECOND,
    )


async def test_tenants_take_turns_then_workflows_then_calls_in_the_order_they_asked(
    gate: Gate,
) -> None:
    await pause(gate)
    for index in range(1, 6):
        await gate.ask(f"big{index}", workflow="big", policy=ONE_PER_SECOND)
    await gate.ask("small", workflow="small", policy=ONE_PER_SECOND)
    await gate.ask("other-tenant", tenant="globex", workflow="g", policy=ONE_PER_SECOND)
    gate.clock.advance(10.0)
    order = await gate.granted_in_turn(7, 1.0, ONE_PER_SECOND)
    assert order == ["big1", "other-tenant", "small", "big2", "big3", "big4", "big5"]


async def test_ties_go_to_whoever_began_waiting_first_not_to_the_first_name(gate: Gate) -> None:
    await pause(gate)
    for tenant, workflow in (("zeta", "z1"), ("alpha", "a1"), ("zeta", "zz"), ("zeta", "aa")):
        name = f"{tenant}-{workflow}"
        await gate.ask(name, tenant=tenant, workflow=workflow, policy=ONE_PER_SECOND)
    gate.clock.advance(10.0)
    order = await gate.granted_in_turn(4, 1.0, ONE_PER_SECOND)
    assert order == ["zeta-z1", "alpha-a1", "zeta-zz", "zeta-aa"]


async def test_a_workflow_that_starts_waiting_joins_the_current_round(gate: Gate) -> None:
    await pause(gate)
    for index in range(1, 5):
        await gate.ask(f"big{index}", workflow="big", policy=ONE_PER_SECOND)
        await gate.ask(f"mid{index}", workflow="mid", policy=ONE_PER_SECOND)
    gate.clock.advance(10.0)
    order = await gate.granted_in_turn(4, 1.0, ONE_PER_SECOND)
    order += names(await gate.ask("late", workflow="late", policy=ONE_PER_SECOND))
    gate.clock.advance(1.0)
    order += await gate.granted_in_turn(2, 1.0, ONE_PER_SECOND)
    # It waited behind no backlog: the others had had their turn in this round.
    assert order == ["big1", "mid1", "big2", "mid2", "late", "big3", "mid3"]


async def test_a_heavier_tenant_gets_turns_in_proportion_to_its_weight(gate: Gate) -> None:
    await pause(gate)
    for index in range(6):
        await gate.ask(f"gold{index}", tenant="gold", weight=2.0, policy=ONE_PER_SECOND)
        await gate.ask(f"free{index}", tenant="free", policy=ONE_PER_SECOND)
    gate.clock.advance(10.0)
    order = await gate.granted_in_turn(9, 1.0, ONE_PER_SECOND)
    assert sum(name.startswith("gold") for name in order) == 6
    assert sum(name.startswith("free") for name in order) == 3


async def test_a_call_that_leaves_gives_up_its_place(gate: Gate) -> None:
    await pause(gate)
    await gate.ask("first", workflow="a", policy=ONE_PER_SECOND)
    await gate.ask("second", workflow="b", policy=ONE_PER_SECOND)
    await gate.port.leave(gate.deployment, "first")
    await gate.port.leave(gate.deployment, "unknown")
    gate.clock.advance(10.0)
    assert await gate.granted_in_turn(2, 1.0, ONE_PER_SECOND) == ["second"]


# --- replicas ------------------------------------------------------------------------


async def test_grants_for_another_replicas_calls_are_handed_to_it(gate: Gate) -> None:
    await pause(gate)
    await gate.ask("theirs", replica="r2", workflow="a", policy=ONE_PER_SECOND)
    await gate.ask("mine", replica="r1", workflow="b", policy=ONE_PER_SECOND)
    gate.clock.advance(10.0)
    pumped = await gate.pump("r1", policy=ONE_PER_SECOND)
    assert pumped.granted == (Grant("theirs", "r2"),)
    handed = await gate.port.take_grants(gate.deployment, replica="r2", timeout_s=1.0)
    assert handed == [Grant("theirs", "r2")]
    assert await gate.port.take_grants(gate.deployment, replica="r2", timeout_s=0.0) == []
    assert await gate.port.take_grants(gate.deployment, replica="r1", timeout_s=0.05) == []


async def test_the_calls_of_a_replica_that_stopped_pumping_leave_the_queue(gate: Gate) -> None:
    await pause(gate)
    await gate.ask("dead1", replica="gone", workflow="a", policy=ONE_PER_SECOND)
    await gate.ask("dead2", replica="gone", workflow="b", policy=ONE_PER_SECOND)
    await gate.ask("alive", replica="r1", workflow="c", policy=ONE_PER_SECOND)
    gate.clock.advance(20.0)
    assert (await gate.pump("r1", policy=ONE_PER_SECOND)).state.waiting == 2  # gone: within TTL
    gate.clock.advance(10.5)
    assert (await gate.pump("r1", policy=ONE_PER_SECOND)).granted == (Grant("alive", "r1"),)
    assert (await gate.port.state(gate.deployment)).waiting == 0
    assert gate.deployment in await gate.port.deployments()
