"""Every LLM and tool call of a workflow is recorded, as the endpoint and the tools saw it.

The real handlers run in-process on the twins with the scripted LLM behind the
real SDK (tests/support/harness.py). What the record says is checked against
what happened where it happened: the requests the endpoint received and the
runs a tool counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel

from tests.support.harness import Harness
from tests.support.scripted import ScriptedEndpoint, rule
from tributary_agent_runner.tools.registry import Tool
from tributary_scripted_llm import Rule
from tributary_shared.core.events import LLMCalled, ToolCalled, decode_event
from tributary_shared.core.recording import conversations, resolve, scope_of
from tributary_shared.core.status import WorkflowStatus

TASK = "look up alpha; look up beta"


class LookupArgs(BaseModel):
    key: str


class Lookup:
    """A read-only tool that counts its runs and answers with ``answer``."""

    def __init__(self, answer: str = "the value is 42") -> None:
        self.runs: list[str] = []
        self.answer = answer
        self.tool = Tool(
            name="lookup", description="Look a key up.", args_model=LookupArgs, run=self._run
        )

    async def _run(self, args: LookupArgs) -> str:
        self.runs.append(args.key)
        return self.answer


@pytest.fixture
async def endpoint() -> AsyncIterator[ScriptedEndpoint]:
    scripted = ScriptedEndpoint()
    # Every agent looks something up once, then answers from the result.
    scripted.add_rule(
        rule(
            {"tool_calls": [{"name": "lookup", "arguments": {"key": "k"}}]},
            has_tools=True,
            has_tool_result=False,
        )
    )
    yield scripted
    await scripted.aclose()


def records(harness: Harness, workflow_id: str) -> list[LLMCalled | ToolCalled]:
    return resolve(harness.published_of(workflow_id))


def llm_records(harness: Harness, workflow_id: str) -> list[LLMCalled]:
    return [r for r in records(harness, workflow_id) if isinstance(r, LLMCalled)]


def tool_records(harness: Harness, workflow_id: str) -> list[ToolCalled]:
    return [r for r in records(harness, workflow_id) if isinstance(r, ToolCalled)]


def canonical(messages: Any) -> list[str]:
    return sorted(repr(m) for m in messages)


async def test_each_llm_call_is_recorded_with_the_messages_the_endpoint_received(
    endpoint: ScriptedEndpoint,
) -> None:
    lookup = Lookup()
    async with Harness(endpoint, tools=[lookup.tool]).running() as harness:
        workflow_id = await harness.submit(TASK)
        await harness.run()
        assert (await harness.record(workflow_id)).status is WorkflowStatus.COMPLETED
        calls = llm_records(harness, workflow_id)

    assert len(calls) == len(endpoint.requests)
    assert Counter(c.role for c in calls) == {"planner": 1, "agent": 4, "synthesizer": 1}
    # Whole conversations, rebuilt from the kept messages, are what was sent.
    whole = conversations(calls)
    sent = sorted(repr(request.messages) for request in endpoint.requests)
    assert sorted(repr(list(messages)) for messages in whole.values()) == sent
    # The second call of a step stores only what it added to the first.
    for call in calls:
        assert call.body is not None
        if call.role == "agent" and call.sequence == 2:
            assert call.body.request.messages_kept == len(whole[(scope_of(call), 1)])
            assert [m["role"] for m in call.body.request.messages] == ["assistant", "tool"]
            assert call.iteration == 2
    for call in calls:
        assert call.body is not None
        response = call.body.response
        assert response is not None
        assert response.usage.total_tokens > 0
        assert len(call.tries) == 1
        assert call.tries[0].error is None
        assert call.tries[0].deployment
        if call.role == "agent":
            assert [t["function"]["name"] for t in call.body.request.tools] == [
                "calculator",
                "lookup",
            ]


async def test_each_tool_run_is_recorded_once_with_its_arguments_and_result(
    endpoint: ScriptedEndpoint,
) -> None:
    lookup = Lookup()
    async with Harness(endpoint, tools=[lookup.tool]).running() as harness:
        workflow_id = await harness.submit(TASK)
        await harness.run()
        tools = tool_records(harness, workflow_id)

    assert len(tools) == len(lookup.runs) == 2
    for record in tools:
        assert record.name == "lookup"
        assert record.outcome == "ran"
        assert not record.failed
        assert record.body is not None
        assert record.body.arguments == '{"key": "k"}'
        assert record.body.result == "the value is 42"
        assert record.iteration == 1
        assert record.sequence == 1
    assert len({r.step_id for r in tools}) == 2


async def test_a_retried_429_is_one_call_with_two_tries(endpoint: ScriptedEndpoint) -> None:
    endpoint.add_rule(
        Rule.model_validate(
            {
                "match": {"schema_name": "tributary_plan"},
                "responses": [{"status": 429}],
                "repeat_last": False,
            }
        )
    )
    async with Harness(endpoint, tools=[Lookup().tool]).running() as harness:
        workflow_id = await harness.submit(TASK)
        await harness.run()
        planner = [c for c in llm_records(harness, workflow_id) if c.role == "planner"]

    assert len(planner) == 1
    (call,) = planner
    assert [t.error.code if t.error else None for t in call.tries] == ["llm_rate_limited", None]
    assert call.error is None


async def test_secrets_in_a_tool_result_are_redacted_in_the_record(
    endpoint: ScriptedEndpoint,
) -> None:
    lookup = Lookup(answer="connect with password=hunter2 to the vault")
    async with Harness(endpoint, tools=[lookup.tool]).running() as harness:
        workflow_id = await harness.submit(TASK)
        await harness.run()
        published = harness.published_of(workflow_id)

    text = "".join(event.model_dump_json() for event in published)
    assert "hunter2" not in text
    (first, *_) = tool_records_of(published)
    assert first.body is not None
    assert "[REDACTED]" in first.body.result


def tool_records_of(events: Any) -> list[ToolCalled]:
    return [r for r in resolve(events) if isinstance(r, ToolCalled)]


async def test_a_result_too_large_for_one_message_travels_in_parts(
    endpoint: ScriptedEndpoint,
) -> None:
    page = "a long page " * 40_000 + "password=[REDACTED]"  # ~480 kB: over the inline limit
    lookup_answer = page.replace("[REDACTED]", "hunter2")
    lookup = Lookup(answer=lookup_answer)
    async with Harness(endpoint, tools=[lookup.tool]).running() as harness:
        workflow_id = await harness.submit(TASK, token_budget=10_000_000)
        await harness.run()
        published = harness.published_of(workflow_id)
        log = await harness.store.read_log(workflow_id, count=10_000)
        logged = [decode_event(entry.event_json) for entry in log]

    parts = [e for e in published if e.type == "call.payload"]
    assert parts
    # Redacted before it was cut: no part carries the secret.
    assert not any("hunter2" in e.model_dump_json() for e in published)
    assert max(len(e.model_dump_json()) for e in published) < 300 * 1024
    tools = tool_records_of(published)
    assert [t.body.result if t.body else None for t in tools] == [page, page]
    # The log holds the same record, parts included: the outbox can send it again.
    assert tool_records_of(logged) == tools


async def test_recording_can_be_turned_off(endpoint: ScriptedEndpoint) -> None:
    lookup = Lookup()
    harness_off = Harness(endpoint, tools=[lookup.tool], llm={"TRIBUTARY_RECORD_CALLS": False})
    async with harness_off.running() as harness:
        workflow_id = await harness.submit(TASK)
        await harness.run()
        assert (await harness.record(workflow_id)).status is WorkflowStatus.COMPLETED
        assert records(harness, workflow_id) == []
    assert len(lookup.runs) == 2
