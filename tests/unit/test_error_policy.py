"""Recovery as the error table says, seen from the LLM endpoint.

The real LLM client and the real ``openai`` SDK talk to the scripted LLM
server in-process (an ASGI transport, no socket); what the server recorded —
how many requests, for which model, when — is what these tests assert on.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
from pydantic import BaseModel

from tests.support.scripted import ScriptedEndpoint
from tests.support.twins import memory_step_history
from tributary_agent_runner.loop import run_agent
from tributary_agent_runner.tools.calculator import calculator_tool
from tributary_agent_runner.tools.registry import ToolRegistry
from tributary_scripted_llm import Rule
from tributary_shared.core.errors import (
    RECOVERY,
    Backoff,
    BudgetExceeded,
    FatalError,
    LogicError,
    ModelError,
    PoisonMessage,
    TransientError,
    recovery_for,
)
from tributary_shared.core.events import PlannedStep, TokenUsage
from tributary_shared.runtime.llm import Completion, LLMClient, Message, Role
from tributary_shared.runtime.llm.structured import complete_structured


def transient_delay(*, retry_after_s: float, cap_s: float, jitter: float) -> float:
    """What the table says a transient error's first retry waits."""
    backoff = RECOVERY[TransientError].retry
    assert backoff is not None
    return backoff.delay(1, jitter=jitter, retry_after_s=retry_after_s, cap_s=cap_s)


def rule(*responses: dict[str, Any], model: str | None = None) -> Rule:
    return Rule.model_validate({"match": {"model": model}, "responses": list(responses)})


Scripted = Callable[..., ScriptedEndpoint]


@pytest.fixture
async def scripted() -> AsyncIterator[Scripted]:
    """Opens an endpoint answering by the given rules; closes them all after the test."""
    opened: list[ScriptedEndpoint] = []

    def open_endpoint(*rules: Rule) -> ScriptedEndpoint:
        opened.append(ScriptedEndpoint(*rules))
        return opened[-1]

    yield open_endpoint
    for endpoint in opened:
        await endpoint.http.aclose()


HELLO: list[Message] = [{"role": "user", "content": "hello"}]


def gap_s(endpoint: ScriptedEndpoint) -> float:
    first, second = endpoint.requests[:2]
    return second.timestamp - first.timestamp


# -- retry with backoff, Retry-After waited out --------------------------------


async def test_a_429_waits_out_its_retry_after(scripted: Scripted) -> None:
    endpoint = scripted(rule({"status": 429, "headers": {"Retry-After": "1"}}, {"content": "fine"}))
    completion = await endpoint.client(TRIBUTARY_LLM_MAX_BACKOFF_S=5.0).complete(
        role="agent", messages=HELLO
    )
    assert completion.content == "fine"
    assert len(endpoint.requests) == 2
    shortest = transient_delay(retry_after_s=1.0, cap_s=5.0, jitter=0.0)
    longest = transient_delay(retry_after_s=1.0, cap_s=5.0, jitter=1.0)
    assert shortest == longest == 1.0  # the server's wait beats the first backoff
    assert 1.0 <= gap_s(endpoint) < 1.5


async def test_a_retry_after_beyond_the_backoff_ceiling_is_still_waited_out(
    scripted: Scripted,
) -> None:
    endpoint = scripted(rule({"status": 429, "headers": {"Retry-After": "1"}}, {"content": "fine"}))
    client = endpoint.client(TRIBUTARY_LLM_MAX_BACKOFF_S=0.2)
    assert (await client.complete(role="agent", messages=HELLO)).content == "fine"
    assert transient_delay(retry_after_s=1.0, cap_s=0.2, jitter=0.0) == 1.0
    assert 1.0 <= gap_s(endpoint) < 1.5  # not back at the ceiling's 0.2 s


async def test_a_retry_after_in_milliseconds_is_waited_out(scripted: Scripted) -> None:
    endpoint = scripted(
        rule({"status": 503, "headers": {"retry-after-ms": "600"}}, {"content": "fine"})
    )
    client = endpoint.client(TRIBUTARY_LLM_MAX_BACKOFF_S=0.05)
    assert (await client.complete(role="agent", messages=HELLO)).content == "fine"
    assert 0.6 <= gap_s(endpoint) < 1.1


async def test_a_retry_after_beyond_the_patience_fails_the_call_at_once(
    scripted: Scripted,
) -> None:
    endpoint = scripted(rule({"status": 429, "headers": {"Retry-After": "120"}}))
    client = endpoint.client(TRIBUTARY_LLM_PATIENCE_S=60)
    with pytest.raises(TransientError) as caught:
        await client.complete(role="agent", messages=HELLO)
    assert caught.value.code == "llm_rate_limited"
    assert len(endpoint.requests) == 1


# -- fallback ---------------------------------------------------------------------


async def test_a_5xx_is_retried_then_the_next_model_takes_over(
    scripted: Scripted,
) -> None:
    endpoint = scripted(rule({"status": 503}, model="primary"))
    completion = await endpoint.client().complete(
        role="agent", messages=HELLO, models=["primary", "backup"]
    )
    assert completion.model == "backup"
    assert endpoint.models == ["primary", "primary", "primary", "backup"]


async def test_a_5xx_that_outlasts_the_patience_fails_the_call_with_its_own_code(
    scripted: Scripted,
) -> None:
    endpoint = scripted(rule({"status": 502}))
    client = endpoint.client(TRIBUTARY_LLM_PATIENCE_S=1.0, TRIBUTARY_LLM_MAX_BACKOFF_S=0.05)
    started = time.monotonic()
    with pytest.raises(TransientError) as caught:
        await client.complete(role="agent", messages=HELLO, models=["only"])
    assert caught.value.code == "llm_unavailable"
    # It kept trying nearly all its patience, round and round past
    # TRIBUTARY_LLM_MAX_ATTEMPTS (3 here), and made no try after it (the recorded
    # times also hold each request's way to the server: a margin for a busy machine).
    assert 0.9 < time.monotonic() - started < 3.0
    assert len(endpoint.models) > 3
    assert endpoint.requests[-1].timestamp - endpoint.requests[0].timestamp <= 1.0 + 0.3


async def test_a_rejected_key_is_neither_retried_nor_handed_to_another_model(
    scripted: Scripted,
) -> None:
    endpoint = scripted(rule({"status": 401}))
    with pytest.raises(FatalError) as caught:
        await endpoint.client().complete(role="agent", messages=HELLO, models=["primary", "backup"])
    assert caught.value.code == "llm_auth_failed"
    assert recovery_for(caught.value).fails_workflow
    assert endpoint.models == ["primary"]


async def test_an_unknown_model_hands_the_call_to_the_next_one_at_once(
    scripted: Scripted,
) -> None:
    endpoint = scripted(rule({"status": 404}, model="retired"))
    completion = await endpoint.client().complete(
        role="agent", messages=HELLO, models=["retired", "current"]
    )
    assert completion.model == "current"
    assert endpoint.models == ["retired", "current"]


async def test_unusable_output_is_not_retried_by_the_client(
    scripted: Scripted,
) -> None:
    endpoint = scripted(rule({"content": "cut", "finish_reason": "length"}))
    with pytest.raises(ModelError) as caught:
        await endpoint.client().complete(role="agent", messages=HELLO, models=["m", "backup"])
    assert caught.value.code == "llm_truncated"
    assert endpoint.models == ["m"]


# -- exactly one corrective re-prompt ---------------------------------------------


class Answer(BaseModel):
    value: int


async def structured(client: LLMClient) -> tuple[Answer, TokenUsage]:
    async def once(conversation: Sequence[Message], response_format: dict[str, Any]) -> Completion:
        return await client.complete(
            role="planner", messages=conversation, response_format=response_format
        )

    return await complete_structured(once, messages=HELLO, output=Answer, schema_name="answer")


async def test_output_off_its_schema_gets_one_reprompt_that_says_what_was_wrong(
    scripted: Scripted,
) -> None:
    endpoint = scripted(rule({"content": "{not json"}, {"json": {"value": 7}}))
    answer, usage = await structured(endpoint.client())
    assert answer == Answer(value=7)
    assert usage.total_tokens > 0
    assert len(endpoint.requests) == 2
    assert "did not match the required JSON schema" in str(endpoint.requests[1].messages[-1])


async def test_output_that_stays_off_its_schema_fails_after_exactly_one_reprompt(
    scripted: Scripted,
) -> None:
    endpoint = scripted(rule({"json": {"value": "seven"}}))
    with pytest.raises(ModelError) as caught:
        await structured(endpoint.client())
    assert caught.value.code == "llm_schema_mismatch"
    assert len(endpoint.requests) == 2


class AgentPort:
    """The agent loop's LLM port over the real client, as the services' metered one is."""

    def __init__(self, client: LLMClient) -> None:
        self._client = client

    async def complete(
        self,
        *,
        role: Role,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] | None = None,
        iteration: int | None = None,
    ) -> Completion:
        return await self._client.complete(role=role, messages=messages, tools=tools)


STEP = PlannedStep(step_id="s1", index=0, title="Greet", instruction="Say hello.")


async def run_step(endpoint: ScriptedEndpoint) -> Any:
    return await run_agent(
        llm=AgentPort(endpoint.client()),
        tools=ToolRegistry([calculator_tool]),
        step=STEP,
        task="greet",
        max_iterations=5,
        history=memory_step_history(),
    )


async def test_a_step_gets_one_reprompt_after_unusable_output(
    scripted: Scripted,
) -> None:
    endpoint = scripted(rule({"content": "hel", "finish_reason": "length"}, {"content": "hello"}))
    outcome = await run_step(endpoint)
    assert outcome.result == "hello"
    assert len(endpoint.requests) == 2
    assert "could not be used" in str(endpoint.requests[1].messages[-1])


async def test_a_step_fails_after_its_one_reprompt_is_spent(
    scripted: Scripted,
) -> None:
    endpoint = scripted(rule({"refusal": "no"}))
    outcome = await run_step(endpoint)
    assert outcome.error is not None
    assert outcome.error.code == "llm_refused"
    assert len(endpoint.requests) == 2


async def test_a_rejected_key_fails_the_step_at_once_and_would_fail_the_workflow(
    scripted: Scripted,
) -> None:
    endpoint = scripted(rule({"status": 401}))
    outcome = await run_step(endpoint)
    assert isinstance(outcome.error, FatalError)
    assert recovery_for(outcome.error).fails_workflow
    assert len(endpoint.requests) == 1


# -- the table itself ---------------------------------------------------------------


def test_a_subclass_recovers_as_its_parent_unless_it_has_its_own_entry() -> None:
    assert recovery_for(BudgetExceeded("over")) == recovery_for(LogicError("stop"))
    assert not recovery_for(BudgetExceeded("over")).fails_workflow


def test_errors_from_outside_the_tree_recover_as_internal_ones() -> None:
    internal = recovery_for(ValueError("bug"))
    assert internal.retry is None
    assert internal.reprompts == 0
    assert not internal.falls_back


def test_only_transient_errors_are_marked_retryable_for_users() -> None:
    assert TransientError("down").to_info().retryable
    assert not FatalError("bad key").to_info().retryable
    assert not ModelError("garbled").to_info().retryable


def test_a_poison_message_is_dead_lettered_at_once() -> None:
    assert recovery_for(PoisonMessage("undecodable")).dead_letters
    assert not recovery_for(TransientError("down")).dead_letters


@pytest.mark.parametrize("attempt", [1, 60, 1025, 100_000])
def test_the_backoff_stays_within_its_cap_however_many_attempts(attempt: int) -> None:
    backoff = Backoff(base_s=0.5, cap_s=30.0)
    assert 0.25 <= backoff.delay(attempt, jitter=0.0) <= 30.0
    assert backoff.delay(attempt, jitter=1.0, cap_s=0.01) <= 0.01
