"""A process's LLM calls waiting for their turn at a deployment (``Admission``), over
the gate's in-memory twin; several ``Admission`` instances over one twin are replicas
sharing one Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx2
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.support.scripted import ScriptedEndpoint, rule
from tributary_shared.core.admission import (
    BreakerState,
    CallOutcome,
    GatePolicy,
    Pumped,
    RateLimitObservation,
    RateLimits,
    Ticket,
)
from tributary_shared.core.completions import CallContext, Message
from tributary_shared.core.errors import DeadlineExceeded, TransientError, recovery_for
from tributary_shared.core.ports import DeploymentGate
from tributary_shared.runtime.llm import LLMClient
from tributary_shared.runtime.llm.admission import Admission, note_rate_limit_headers
from tributary_shared.runtime.settings import AdmissionSettings
from tributary_shared.twins import MemoryDeploymentGate

MODEL = "model-a"
MESSAGES: Sequence[Message] = ({"role": "user", "content": "hi"},)


def settings(**values: Any) -> AdmissionSettings:
    return AdmissionSettings.model_validate(values)


def context(workflow_id: str = "wf", tenant_id: str = "acme", **more: Any) -> CallContext:
    return CallContext(workflow_id=workflow_id, tenant_id=tenant_id, **more)


class CountingGate(MemoryDeploymentGate):
    """The twin, counting how often it is pumped (waiting must not spin)."""

    def __init__(self) -> None:
        super().__init__()
        self.pumps = 0

    async def pump(self, deployment: str, *, replica: str, policy: GatePolicy) -> Pumped:
        self.pumps += 1
        return await super().pump(deployment, replica=replica, policy=policy)


class UnreachableGate(MemoryDeploymentGate):
    async def enqueue(self, deployment: str, ticket: Ticket, *, policy: GatePolicy) -> Pumped:
        raise RedisConnectionError("Connection refused")


async def call(
    admission: Admission,
    *,
    deployment: str = MODEL,
    ctx: CallContext | None = None,
    order: list[str] | None = None,
    name: str = "",
    fail_with: BaseException | None = None,
    hold: asyncio.Event | None = None,
) -> None:
    async with admission.admit(
        deployment=deployment, context=ctx or context(), messages=MESSAGES, max_tokens=10
    ):
        if order is not None:
            order.append(name)
        if hold is not None:
            await hold.wait()
        if fail_with is not None:
            raise fail_with


Replicas = Callable[..., Admission]


@pytest.fixture
async def replica() -> AsyncIterator[Replicas]:
    """Builds a process's admission (a replica) over a gate; stops them after the test."""
    built: list[Admission] = []

    def build(gate: DeploymentGate, **values: Any) -> Admission:
        built.append(Admission(gate, settings=settings(**values)))
        return built[-1]

    yield build
    for admission in built:
        await admission.aclose()


async def pause_for(gate: MemoryDeploymentGate, seconds: float, deployment: str = MODEL) -> None:
    """As if a call had just been answered 429 with ``Retry-After: seconds``."""
    policy = GatePolicy()
    await gate.enqueue(deployment, Ticket("first", "acme", "wf", "elsewhere"), policy=policy)
    await gate.report(
        deployment,
        replica="elsewhere",
        ticket_id="first",
        outcome=CallOutcome.RATE_LIMITED,
        observation=RateLimitObservation(retry_after_s=seconds),
        policy=policy,
    )


async def test_calls_wait_their_turn_without_spinning(replica: Replicas) -> None:
    gate = CountingGate()
    admission = replica(gate, llm_rate_limits={MODEL: {"rpm": 1200}}, llm_rate_burst_s=0.05)
    order: list[str] = []
    await asyncio.gather(*(call(admission, order=order, name=str(i)) for i in range(8)))
    assert sorted(order) == sorted(str(i) for i in range(8))
    # Paced one per 50 ms: each pump comes when the next may go, not in a busy loop.
    assert gate.pumps <= 2 * 8


async def test_a_small_workflow_is_not_stuck_behind_a_large_one_across_replicas(
    replica: Replicas,
) -> None:
    gate = MemoryDeploymentGate()
    paced: dict[str, Any] = {"llm_rate_limits": {MODEL: {"rpm": 1200}}, "llm_rate_burst_s": 0.05}
    first, second = replica(gate, **paced), replica(gate, **paced)
    await pause_for(gate, 0.2)
    order: list[str] = []
    large = [call(first, ctx=context("large"), order=order, name=f"large{i}") for i in range(20)]
    waiting = [asyncio.create_task(step) for step in large]
    await asyncio.sleep(0.05)  # the large workflow asked first
    await call(second, ctx=context("small"), order=order, name="small")
    assert order.index("small") <= 1
    await asyncio.gather(*waiting)


async def test_a_call_gives_up_when_its_deadline_passes_and_leaves_the_queue(
    replica: Replicas,
) -> None:
    gate = MemoryDeploymentGate()
    admission = replica(gate)
    await pause_for(gate, 60.0)
    with pytest.raises(DeadlineExceeded) as raised:
        await call(admission, ctx=context(deadline_at=time.time() + 0.1))
    assert raised.value.code == "llm_admission_deadline_exceeded"
    assert recovery_for(raised.value).retry is None
    assert (await gate.state(MODEL)).waiting == 0
    assert admission.waiting == 0
    with pytest.raises(DeadlineExceeded):  # already past: it does not even queue
        await call(admission, ctx=context(deadline_at=time.time() - 1))


async def test_a_cancelled_call_leaves_the_queue(replica: Replicas) -> None:
    gate = MemoryDeploymentGate()
    admission = replica(gate)
    await pause_for(gate, 60.0)
    waiting = asyncio.create_task(call(admission))
    await asyncio.sleep(0.05)
    assert (await gate.state(MODEL)).waiting == 1
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await asyncio.sleep(0.05)
    assert (await gate.state(MODEL)).waiting == 0


async def test_one_call_more_than_may_wait_is_refused_as_transient(replica: Replicas) -> None:
    gate = MemoryDeploymentGate()
    admission = replica(gate, llm_max_waiting=2)
    await pause_for(gate, 60.0)
    waiting = [asyncio.create_task(call(admission)) for _ in range(2)]
    await asyncio.sleep(0.05)
    with pytest.raises(TransientError) as raised:
        await call(admission)
    assert raised.value.code == "llm_admission_queue_full"
    assert raised.value.retryable
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)


async def test_waiting_calls_hold_no_sending_slot(replica: Replicas) -> None:
    gate = MemoryDeploymentGate()
    admission = replica(gate, llm_max_sending=1)
    await pause_for(gate, 60.0, deployment="blocked")
    waiting = [asyncio.create_task(call(admission, deployment="blocked")) for _ in range(5)]
    await asyncio.sleep(0.05)
    # Five calls wait for "blocked"; the one sending slot is free for another deployment.
    await asyncio.wait_for(call(admission, deployment="healthy"), timeout=2)
    hold = asyncio.Event()
    sending = asyncio.create_task(call(admission, deployment="healthy", hold=hold))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(call(admission, deployment="healthy"))
    await asyncio.sleep(0.05)
    assert not second.done()  # admitted, waiting for the one slot
    hold.set()
    await asyncio.wait_for(asyncio.gather(sending, second), timeout=2)
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)


async def test_outages_open_the_breaker_for_every_replica_and_one_probe_reopens_it(
    replica: Replicas,
) -> None:
    gate = MemoryDeploymentGate()
    breaker: dict[str, Any] = {"llm_breaker_failures": 2, "llm_breaker_cooldown_s": 0.2}
    first, second = replica(gate, **breaker), replica(gate, **breaker)
    down = TransientError("the LLM endpoint could not be reached", code="llm_unavailable")
    for _ in range(2):
        with pytest.raises(TransientError):
            await call(first, fail_with=down)
    assert (await gate.state(MODEL)).breaker is BreakerState.OPEN
    order: list[str] = []
    hold = asyncio.Event()
    probe = asyncio.create_task(call(second, order=order, name="probe", hold=hold))
    others = [
        asyncio.create_task(call(replica, ctx=context(f"wf{i}"), order=order, name=f"after{i}"))
        for i, replica in enumerate((first, second, first))
    ]
    await asyncio.sleep(0.5)
    assert order == ["probe"]  # the cooldown is over: exactly one call went
    assert (await gate.state(MODEL)).breaker is BreakerState.HALF_OPEN
    hold.set()
    await asyncio.wait_for(asyncio.gather(probe, *others), timeout=2)
    assert sorted(order[1:]) == ["after0", "after1", "after2"]
    assert (await gate.state(MODEL)).breaker is BreakerState.CLOSED


async def test_a_cancelled_probe_lets_the_next_call_probe_at_once(replica: Replicas) -> None:
    gate = MemoryDeploymentGate()
    admission = replica(
        gate, llm_breaker_failures=1, llm_breaker_cooldown_s=0.1, llm_breaker_probe_lease_s=60
    )
    with pytest.raises(TransientError):
        await call(admission, fail_with=TransientError("down", code="llm_timeout"))
    hold = asyncio.Event()
    probe = asyncio.create_task(call(admission, hold=hold))
    await asyncio.sleep(0.3)
    assert (await gate.state(MODEL)).breaker is BreakerState.HALF_OPEN
    probe.cancel()
    await asyncio.gather(probe, return_exceptions=True)
    await asyncio.wait_for(call(admission), timeout=2)  # not after the 60 s lease
    assert (await gate.state(MODEL)).breaker is BreakerState.CLOSED


async def test_rate_limit_headers_of_the_response_reach_the_gate(replica: Replicas) -> None:
    gate = MemoryDeploymentGate()
    admission = replica(gate)
    async with admission.admit(deployment=MODEL, context=context(), messages=MESSAGES):
        await note_rate_limit_headers(
            httpx2.Response(
                200,
                headers={
                    "x-ratelimit-limit-requests": "60",
                    "x-ratelimit-remaining-requests": "0",
                    "x-ratelimit-limit-tokens": "1000",
                },
            )
        )
    state = await gate.state(MODEL)
    assert state.limits == RateLimits(requests_per_minute=60, tokens_per_minute=1000)
    assert gate.gates[MODEL].tat_requests > time.time()  # the provider had none left


async def test_a_429_through_the_client_pauses_the_deployment_for_everyone(
    replica: Replicas,
) -> None:
    endpoint = ScriptedEndpoint(
        rule({"status": 429, "headers": {"Retry-After": "30"}}, {"content": "ok"})
    )
    gate = MemoryDeploymentGate()
    client = LLMClient(
        # No patience: the call gives up at the 429 instead of waiting out its Retry-After.
        endpoint.settings(
            TRIBUTARY_LLM_MAX_ATTEMPTS=1, TRIBUTARY_LLM_PATIENCE_S=0, TRIBUTARY_AGENT_MODEL=MODEL
        ),
        http_client=endpoint.http,
        admission=replica(gate),
    )
    with pytest.raises(TransientError):
        await client.complete(role="agent", messages=MESSAGES, context=context())
    state = await gate.state(MODEL)
    assert state.paused_until == pytest.approx(time.time() + 30, abs=2)
    await endpoint.aclose()


async def test_without_redis_calls_go_out_unpaced_rather_than_stall(replica: Replicas) -> None:
    admission = replica(UnreachableGate())
    await asyncio.wait_for(call(admission), timeout=2)


class SlowReportGate(MemoryDeploymentGate):
    """The twin, whose reports wait until ``reports_may_go`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.reports_may_go = asyncio.Event()
        self.reported: list[CallOutcome] = []

    async def report(
        self,
        deployment: str,
        *,
        replica: str,
        ticket_id: str,
        outcome: CallOutcome,
        observation: RateLimitObservation,
        policy: GatePolicy,
    ) -> Pumped:
        await self.reports_may_go.wait()
        self.reported.append(outcome)
        return await super().report(
            deployment,
            replica=replica,
            ticket_id=ticket_id,
            outcome=outcome,
            observation=observation,
            policy=policy,
        )


async def test_an_answer_is_reported_off_the_calls_path() -> None:
    gate = SlowReportGate()
    admission = Admission(gate, settings=settings())
    async with asyncio.timeout(5):
        await call(admission)  # returns although the gate has not taken the report yet
    assert gate.reported == []
    gate.reports_may_go.set()
    for _ in range(50):
        if gate.reported:
            break
        await asyncio.sleep(0.01)
    assert gate.reported == [CallOutcome.OK]
    await admission.aclose()


@pytest.mark.parametrize(
    "headers",
    [{"x-ratelimit-remaining-requests": "0"}, {"x-ratelimit-remaining-tokens": "0"}],
)
async def test_an_answer_that_used_up_a_limit_is_reported_before_the_call_returns(
    headers: dict[str, str],
) -> None:
    gate = SlowReportGate()
    admission = Admission(gate, settings=settings())
    returned = asyncio.Event()

    async def answered() -> None:
        async with admission.admit(deployment=MODEL, context=context(), messages=MESSAGES):
            await note_rate_limit_headers(httpx2.Response(200, headers=headers))
        returned.set()

    task = asyncio.create_task(answered())
    await asyncio.sleep(0.1)
    assert not returned.is_set()  # the next call must find the gate told
    gate.reports_may_go.set()
    await asyncio.wait_for(task, 5)
    assert gate.reported == [CallOutcome.OK]
    await admission.aclose()


async def test_a_failed_call_is_reported_before_it_returns() -> None:
    gate = SlowReportGate()
    admission = Admission(gate, settings=settings())
    task = asyncio.create_task(
        call(admission, fail_with=TransientError("boom", code="llm_unavailable"))
    )
    await asyncio.sleep(0.1)
    assert not task.done()
    gate.reports_may_go.set()
    with pytest.raises(TransientError):
        await asyncio.wait_for(task, 5)
    assert gate.reported == [CallOutcome.OUTAGE]
    await admission.aclose()
