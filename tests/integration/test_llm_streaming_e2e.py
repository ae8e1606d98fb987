"""Streamed LLM answers across the real processes (``TRIBUTARY_LLM_STREAM=true``).

The module's own gateway and workers stream every LLM call from the scripted
server; a workflow with tool calls completes as it does without streaming, one
agent answer whose connection drops midway is asked for again, and the
agent-runner's ``/metrics`` counts the time to first token of its calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.client import GatewayClient
from tests.support.stack import RunningServices, start_services
from tributary_devstack.stack import Stack
from tributary_scripted_llm import ScriptedLLMAdmin, ScriptedLLMServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def streaming_services(
    exclusive_topics: Stack, llm: ScriptedLLMServer
) -> Iterator[RunningServices]:
    running = start_services(
        exclusive_topics,
        llm_base_url=llm.base_url,
        label="streamed",
        extra_env={"TRIBUTARY_LLM_STREAM": "true"},
    )
    yield running
    running.stop()


@pytest.fixture
async def client(streaming_services: RunningServices, api_key: str) -> AsyncIterator[GatewayClient]:
    gateway = GatewayClient(streaming_services.gateway_url, api_key)
    yield gateway
    await gateway.aclose()


async def first_tokens_seen(services: RunningServices) -> float:
    """``llm_time_to_first_token_seconds_count`` summed over the agent-runner's series."""
    url = f"http://127.0.0.1:{services.process('agent-runner').port}/metrics"
    async with httpx.AsyncClient(timeout=10) as http:
        body = (await http.get(url)).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == "llm_time_to_first_token_seconds_count"
    )


async def test_a_workflow_completes_over_streamed_answers_and_its_first_tokens_are_timed(
    client: GatewayClient,
    streaming_services: RunningServices,
    llm_admin: ScriptedLLMAdmin,
    marker: str,
) -> None:
    # The first agent answer of the workflow breaks off after two chunks.
    llm_admin.add_rule(
        contains=marker,
        has_tools=True,
        repeat_last=False,
        responses=[{"stream_break_after": 2}],
    )
    before = await first_tokens_seen(streaming_services)

    _workflow_id, _events, final = await client.run(f"work out 17 * 23; then 6 + 7 {marker}")

    assert final["status"] == "completed"
    asked = llm_admin.requests(contains=marker)
    assert asked, "the scripted server saw none of the workflow's calls"
    assert all(request.stream for request in asked)
    # The broken answer was asked for again: its rule served once, and more agent
    # calls followed than the two steps' two rounds (tool call, then answer).
    agent_calls = [request for request in asked if request.tools]
    assert sum(1 for request in agent_calls if request.rule_id is not None) == 1
    assert len(agent_calls) >= 5
    # Every agent call that was answered whole timed its first token.
    assert await first_tokens_seen(streaming_services) >= before + 4
