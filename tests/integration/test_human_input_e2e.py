"""Human in the loop across the real services: agents ask, people answer, steps resume.

The scripted LLM makes chosen steps call ``ask_human`` first. What a user relies
on, checked at the real stack: parallel questions answered in any order each
resume their own step, and the LLM calls made before a pause are not made
again (counted at the scripted server, per step); a pause outlives a restart of
every service, of Kafka and of Redis; an unanswered question times out to its default answer; an
integration answers through the Kafka ingress topic; ``tributary run`` answers
the question it is asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from tests.support.cli_runs import cli_env, tributary
from tests.support.client import GatewayClient
from tests.support.keys import TEST_TENANT
from tests.support.recovery import agent_calls_per_step, wait_until_all_end
from tests.support.stack import RunningServices
from tributary_devstack.stack import Stack
from tributary_scripted_llm import ScriptedLLMAdmin
from tributary_shared.core import topics
from tributary_shared.core.events import InputSubmitted, encode_event

pytestmark = pytest.mark.integration


def ask_in(admin: ScriptedLLMAdmin, marker: str, *steps: str) -> None:
    """The agents of these steps (of the marker's workflow) first ask which colour."""
    for step in steps:
        admin.add_rule(
            contains=marker,
            last_user_contains=step,
            has_tools=True,
            has_tool_result=False,
            responses=[
                {
                    "tool_calls": [
                        {
                            "name": "ask_human",
                            "arguments": {
                                "question": f"which colour for {step}?",
                                "choices": ["red", "blue"],
                            },
                        }
                    ]
                }
            ],
        )


async def open_requests(
    gateway: GatewayClient, workflow_id: str, count: int, *, within: float = 40
) -> list[dict[str, Any]]:
    """The workflow's open input requests, once it is awaiting ``count`` of them."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        state = await gateway.get(workflow_id)
        requests: list[dict[str, Any]] = state["input_requests"]
        if state["status"] == "awaiting_input" and len(requests) == count:
            return requests
        assert loop.time() < deadline, (state["status"], requests)
        await asyncio.sleep(0.2)


async def ended(gateway: GatewayClient, workflow_id: str) -> None:
    """Until the workflow has ended; fails after a minute rather than follow a stuck one."""
    await wait_until_all_end(gateway, [workflow_id], within=60)


async def answer(gateway: GatewayClient, workflow_id: str, request_id: str, text: str) -> None:
    response = await gateway.http.post(
        f"/v1/workflows/{workflow_id}/input", json={"request_id": request_id, "answer": text}
    )
    assert response.status_code == 202, response.text


async def test_parallel_questions_answered_in_reverse_order_resume_without_repeated_calls(
    gateway: GatewayClient, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    ask_in(llm_admin, marker, "collect alpha", "collect beta")
    workflow_id = await gateway.start(f"collect alpha {marker}; collect beta")
    requests = await open_requests(gateway, workflow_id, 2)
    by_step = {r["step_id"]: r for r in requests}
    assert set(by_step) == {"s1", "s2"}
    assert by_step["s1"]["choices"] == ["red", "blue"]
    assert by_step["s1"]["kind"] == "question"

    await answer(gateway, workflow_id, by_step["s2"]["request_id"], "blue")
    await answer(gateway, workflow_id, by_step["s1"]["request_id"], "red")
    refused = await gateway.http.post(
        f"/v1/workflows/{workflow_id}/input",
        json={"request_id": by_step["s1"]["request_id"], "answer": "blue"},
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "input_already_answered")

    await ended(gateway, workflow_id)
    events = await gateway.follow(workflow_id)
    state = await gateway.get(workflow_id)
    assert state["status"] == "completed", state.get("error")
    assert state["input_requests"] == []
    # One call before the pause, one after it: the first is never made again.
    assert agent_calls_per_step(llm_admin, state) == {"s1": 2, "s2": 2}
    types = [e.type for e in events]
    assert types.count("input.requested") == 2
    answered = [(e.data["step_id"], e.data["answer"]) for e in events if e.type == "input.answered"]
    assert answered == [("s2", "blue"), ("s1", "red")]


async def test_a_pause_survives_a_restart_of_every_service_and_of_kafka_and_redis(
    stack: Stack,
    services: RunningServices,
    api_key: str,
    llm_admin: ScriptedLLMAdmin,
    marker: str,
) -> None:
    ask_in(llm_admin, marker, "collect alpha")
    before = GatewayClient(services.gateway_url, api_key)
    try:
        workflow_id = await before.start(f"collect alpha {marker}")
        (request,) = await open_requests(before, workflow_id, 1)
    finally:
        await before.aclose()
    services.stop()
    stack.stop_kafka()
    stack.stop_redis()
    stack.ensure_redis()
    stack.start_kafka()
    services.restart_all()
    after = GatewayClient(services.gateway_url, api_key)
    try:
        assert [r["request_id"] for r in await open_requests(after, workflow_id, 1)] == [
            request["request_id"]
        ]
        await answer(after, workflow_id, request["request_id"], "red")
        await ended(after, workflow_id)
        state = await after.get(workflow_id)
    finally:
        await after.aclose()
    assert state["status"] == "completed", state.get("error")
    assert agent_calls_per_step(llm_admin, state) == {"s1": 2}


async def test_an_unanswered_question_times_out_to_its_default_answer(
    gateway: GatewayClient, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    ask_in(llm_admin, marker, "collect alpha")
    workflow_id = await gateway.start(
        f"collect alpha {marker}", options={"input_timeout_s": 1, "on_input_timeout": "blue"}
    )
    await ended(gateway, workflow_id)
    events = await gateway.follow(workflow_id)
    state = await gateway.get(workflow_id)
    assert state["status"] == "completed", state.get("error")
    (answered,) = [e.data for e in events if e.type == "input.answered"]
    assert (answered["answer"], answered["source"]) == ("blue", "timeout")
    assert agent_calls_per_step(llm_admin, state) == {"s1": 2}


@pytest.fixture
async def ingress(services: RunningServices) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{services.stack.config.kafka_port}")
    await producer.start()
    yield producer
    await producer.stop()


async def test_an_integration_answers_through_the_ingress_topic(
    gateway: GatewayClient,
    llm_admin: ScriptedLLMAdmin,
    marker: str,
    ingress: AIOKafkaProducer,
) -> None:
    ask_in(llm_admin, marker, "collect alpha")
    workflow_id = await gateway.start(f"collect alpha {marker}")
    (request,) = await open_requests(gateway, workflow_id, 1)
    submitted = InputSubmitted(
        workflow_id=workflow_id,
        tenant_id=TEST_TENANT,
        request_id=request["request_id"],
        answer="red",
    )
    await ingress.send_and_wait(
        topics.WORKFLOW_REQUESTS.name, encode_event(submitted), key=workflow_id.encode()
    )
    await ended(gateway, workflow_id)
    events = await gateway.follow(workflow_id)
    state = await gateway.get(workflow_id)
    assert state["status"] == "completed", state.get("error")
    (answered,) = [e.data for e in events if e.type == "input.answered"]
    assert (answered["answer"], answered["source"]) == ("red", "kafka")


async def test_the_command_line_answers_a_question_and_the_run_completes(
    stack: Stack, services: RunningServices, api_key: str, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    ask_in(llm_admin, marker, "collect alpha")
    env = cli_env(stack, TRIBUTARY_URL=services.gateway_url, TRIBUTARY_API_KEY=api_key)
    done = await tributary(
        env, "run", f"collect alpha {marker}", "--plain", "--answer-all", "red", timeout_s=120
    )
    assert done.status == 0, done.stdout + done.stderr
    assert "which colour for collect alpha?" in done.stdout
    assert "input.answered" in done.stdout
