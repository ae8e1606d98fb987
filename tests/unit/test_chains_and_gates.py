"""Chains of deployments through their shared admission gates (the in-memory twin).

A deployment whose gate holds a call (its circuit breaker open, its rate limit
reached) hands the call to the next deployment of its chain after
TRIBUTARY_LLM_HANDOVER_WAIT_S; at the last one, the call waits its turn as long
as its patience and deadline allow, and its workflow hears that it waits. What
each endpoint received is counted at the scripted server's hosts.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.support.scripted import HOST, ScriptedEndpoint, deployment, rule
from tributary_shared.core.admission import (
    CallOutcome,
    GatePolicy,
    RateLimitObservation,
    RateLimits,
    Ticket,
)
from tributary_shared.core.completions import CallContext, Message, ModelWait
from tributary_shared.core.errors import DeadlineExceeded, TransientError, recovery_for
from tributary_shared.runtime.llm import LLMClient
from tributary_shared.runtime.llm.admission import Admission
from tributary_shared.runtime.settings import AdmissionSettings, LLMSettings
from tributary_shared.runtime.worker import deployment_limits
from tributary_shared.twins import MemoryDeploymentGate

HELLO: list[Message] = [{"role": "user", "content": "hello"}]
MODEL = "gpt-4o-mini"
BACKUP = "backup-llm"
CHAIN = {MODEL: [deployment("a", HOST), deployment("b", BACKUP)]}


@pytest.fixture
async def endpoint() -> AsyncIterator[ScriptedEndpoint]:
    scripted = ScriptedEndpoint()
    yield scripted
    await scripted.aclose()


Gated = Callable[..., LLMClient]


@pytest.fixture
async def gated(endpoint: ScriptedEndpoint) -> AsyncIterator[Gated]:
    """Clients whose calls go through an admission over the given twin gate."""
    admissions: list[Admission] = []

    def build(gate: MemoryDeploymentGate, admission: dict[str, Any], **llm: object) -> LLMClient:
        admissions.append(Admission(gate, settings=AdmissionSettings.model_validate(admission)))
        return LLMClient(
            endpoint.settings(**llm), http_client=endpoint.http, admission=admissions[-1]
        )

    yield build
    for admission in admissions:
        await admission.aclose()


async def hold(gate: MemoryDeploymentGate, deployment_id: str, seconds: float) -> None:
    """The deployment's gate lets nothing go for ``seconds``, as after a 429 elsewhere."""
    policy = GatePolicy()
    await gate.enqueue(deployment_id, Ticket("other", "acme", "wf", "elsewhere"), policy=policy)
    await gate.report(
        deployment_id,
        replica="elsewhere",
        ticket_id="other",
        outcome=CallOutcome.RATE_LIMITED,
        observation=RateLimitObservation(retry_after_s=seconds),
        policy=policy,
    )


class Waits:
    def __init__(self) -> None:
        self.seen: list[ModelWait] = []

    async def __call__(self, wait: ModelWait) -> bool:
        self.seen.append(wait)
        return True


async def test_a_deployment_whose_gate_holds_the_call_hands_it_to_the_next(
    endpoint: ScriptedEndpoint, gated: Gated
) -> None:
    gate = MemoryDeploymentGate()
    await hold(gate, "a", 60.0)
    client = gated(gate, {}, TRIBUTARY_LLM_DEPLOYMENTS=CHAIN, TRIBUTARY_LLM_HANDOVER_WAIT_S=0.3)
    started = time.monotonic()
    completion = await client.complete(role="agent", messages=HELLO)
    assert completion.deployment == "b"
    assert 0.3 <= time.monotonic() - started < 2.0  # the handover wait, not the 60 s
    assert endpoint.attempts_at(HOST) == 0  # nothing went to the held deployment
    assert (await gate.state("a")).waiting == 0  # and the call left its queue


async def test_a_call_held_at_its_last_deployment_waits_its_turn_and_says_so(
    endpoint: ScriptedEndpoint, gated: Gated
) -> None:
    gate = MemoryDeploymentGate()
    await hold(gate, MODEL, 1.2)
    client = gated(gate, {}, TRIBUTARY_LLM_WAIT_NOTICE_INTERVAL_S=0.3)
    waits = Waits()
    started = time.monotonic()
    completion = await client.complete(
        role="agent",
        messages=HELLO,
        context=CallContext("wf_1", "acme", deadline_at=time.time() + 30),
        on_wait=waits,
    )
    assert completion.content
    assert time.monotonic() - started >= 1.1  # it waited its turn
    assert endpoint.attempts_at(HOST) == 1  # and was sent once, when let
    assert 2 <= len(waits.seen) <= 5
    for wait in waits.seen:
        assert (wait.deployment, wait.error, wait.attempt, wait.next_try_at) == (
            MODEL,
            None,  # nothing failed: the gate holds it
            0,
            None,  # when the gate lets it
        )


async def test_a_call_held_until_its_deadline_fails_with_the_deadline(
    endpoint: ScriptedEndpoint, gated: Gated
) -> None:
    gate = MemoryDeploymentGate()
    await hold(gate, MODEL, 60.0)
    client = gated(gate, {})
    deadline = time.time() + 1.0
    with pytest.raises(DeadlineExceeded) as caught:
        await client.complete(
            role="agent", messages=HELLO, context=CallContext("wf_1", "acme", deadline)
        )
    assert time.time() >= deadline - 0.05
    assert recovery_for(caught.value).fails_workflow
    assert endpoint.attempts_at(HOST) == 0


async def test_a_call_held_after_failing_gives_up_at_its_patience_with_what_the_endpoint_said(
    endpoint: ScriptedEndpoint, gated: Gated
) -> None:
    endpoint.add_rule(rule({"status": 503}))
    gate = MemoryDeploymentGate()
    # One outage opens the breaker for a minute: the next try waits at the gate.
    client = gated(
        gate,
        {"llm_breaker_failures": 1, "llm_breaker_cooldown_s": 60},
        TRIBUTARY_LLM_PATIENCE_S=1.0,
    )
    started = time.monotonic()
    with pytest.raises(TransientError) as caught:
        await client.complete(
            role="agent", messages=HELLO, context=CallContext("wf_1", "acme", time.time() + 30)
        )
    assert 0.9 <= time.monotonic() - started < 3.0  # its patience, well before the deadline
    assert caught.value.code == "llm_unavailable"
    assert "HTTP 503" in caught.value.message  # the endpoint's failure, not the gate's hold
    assert endpoint.attempts_at(HOST) == 1


def test_a_deployments_own_limits_win_over_the_rate_limits_setting() -> None:
    llm = LLMSettings.model_validate(
        {"TRIBUTARY_LLM_DEPLOYMENTS": {MODEL: [{"id": "eu", "rpm": 60}, {"id": "us"}]}}
    )
    admission = AdmissionSettings.model_validate(
        {
            "llm_rate_limits": {
                "eu": {"rpm": 600, "tpm": 1000},
                "us": {"tpm": 2000},
                "other-model": {"rpm": 5},
            }
        }
    )
    limits = deployment_limits(llm, admission)
    assert limits("eu") == RateLimits(requests_per_minute=60, tokens_per_minute=1000)
    assert limits("us") == RateLimits(tokens_per_minute=2000)
    assert limits("other-model") == RateLimits(requests_per_minute=5)  # by the model's name
    assert limits("unknown") == RateLimits()
