"""The scripted LLM over real HTTP, driven by the official ``openai`` SDK."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCall,
)
from pydantic import BaseModel, ValidationError

from tributary_scripted_llm import AdminError, ScriptedLLMAdmin, ScriptedLLMServer

CALCULATOR: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluate an arithmetic expression.",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
        },
    },
}


class PlanStep(BaseModel):
    title: str
    instruction: str
    expected_output: str


class Plan(BaseModel):
    steps: list[PlanStep]


@pytest.fixture(scope="module")
def llm() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer() as server:
        yield server


@pytest.fixture
def admin(llm: ScriptedLLMServer) -> Iterator[ScriptedLLMAdmin]:
    llm.admin.reset()
    yield llm.admin
    llm.admin.reset()


@pytest.fixture
async def client(llm: ScriptedLLMServer) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=llm.base_url, api_key="x", max_retries=0) as sdk:
        yield sdk


def function_calls(completion: ChatCompletion) -> list[ChatCompletionMessageFunctionToolCall]:
    calls = completion.choices[0].message.tool_calls or []
    assert all(isinstance(call, ChatCompletionMessageFunctionToolCall) for call in calls)
    return [call for call in calls if isinstance(call, ChatCompletionMessageFunctionToolCall)]


def marker() -> str:
    return f"#{uuid.uuid4().hex[:10]}"


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


async def test_plain_answer(client: AsyncOpenAI, admin: ScriptedLLMAdmin) -> None:
    completion = await client.chat.completions.create(
        model="my-model", messages=user("Summarise: step one said 4")
    )
    assert completion.model == "my-model"
    assert completion.object == "chat.completion"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content == "Answer: Summarise: step one said 4"
    assert choice.message.tool_calls is None
    assert completion.usage is not None
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    (record,) = admin.requests()
    assert record.model == "my-model"
    assert record.rule_id is None
    assert record.messages == user("Summarise: step one said 4")


async def test_auto_tool_call_round_trip(client: AsyncOpenAI, admin: ScriptedLLMAdmin) -> None:
    messages: list[Any] = user("What is 6 * (3 + 4)?")
    first = await client.chat.completions.create(model="m", messages=messages, tools=[CALCULATOR])
    assert first.choices[0].finish_reason == "tool_calls"
    (call,) = function_calls(first)
    assert call.type == "function"
    assert call.function.name == "calculator"
    assert json.loads(call.function.arguments) == {"expression": "6 * (3 + 4)"}

    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "42"},
    ]
    second = await client.chat.completions.create(model="m", messages=messages, tools=[CALCULATOR])
    assert second.choices[0].message.content == "Based on calculator: 42"
    assert [r.tools for r in admin.requests()] == [["calculator"], ["calculator"]]


async def test_json_schema_plan(client: AsyncOpenAI, admin: ScriptedLLMAdmin) -> None:
    completion = await client.chat.completions.create(
        model="m",
        messages=[
            {"role": "system", "content": "You plan."},
            {"role": "user", "content": "Task: compute 2 + 2; fetch the docs; write summary"},
        ],
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "tributary_plan",
                "schema": Plan.model_json_schema(),
                "strict": True,
            },
        },
    )
    plan = Plan.model_validate_json(completion.choices[0].message.content or "")
    assert [s.instruction for s in plan.steps] == [
        "compute 2 + 2",
        "fetch the docs",
        "write summary",
    ]
    assert admin.requests()[0].response_format == "tributary_plan"


async def test_parse_with_pydantic_model_gets_generic_instance(client: AsyncOpenAI) -> None:
    completion = await client.chat.completions.parse(
        model="m", messages=user("anything"), response_format=PlanStep
    )
    assert completion.choices[0].message.parsed == PlanStep(
        title="", instruction="", expected_output=""
    )


async def test_rate_limit_with_retry_after(client: AsyncOpenAI, admin: ScriptedLLMAdmin) -> None:
    tag = marker()
    admin.add_rule(
        contains=tag,
        responses=[
            {
                "status": 429,
                "headers": {"Retry-After": "1"},
                "error": {"message": "slow down", "code": "rate_limit_exceeded"},
            }
        ],
    )
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="m", messages=user(f"go {tag}"))
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.body == {
        "message": "slow down",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }


async def test_sdk_retries_then_succeeds(llm: ScriptedLLMServer, admin: ScriptedLLMAdmin) -> None:
    tag = marker()
    admin.add_rule(
        contains=tag,
        responses=[
            {"status": 503, "headers": {"retry-after-ms": "10"}},
            {"content": "recovered"},
        ],
    )
    async with AsyncOpenAI(base_url=llm.base_url, api_key="x", max_retries=1) as sdk:
        completion = await sdk.chat.completions.create(model="m", messages=user(tag))
    assert completion.choices[0].message.content == "recovered"
    assert len(admin.requests(contains=tag)) == 2


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (404, openai.NotFoundError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
async def test_error_statuses(
    client: AsyncOpenAI, admin: ScriptedLLMAdmin, status: int, error_type: type[Exception]
) -> None:
    tag = marker()
    admin.add_rule(contains=tag, responses=[{"status": status}])
    with pytest.raises(error_type):
        await client.chat.completions.create(model="m", messages=user(tag))


async def test_malformed_tool_arguments_come_back_verbatim(
    client: AsyncOpenAI, admin: ScriptedLLMAdmin
) -> None:
    tag = marker()
    rule_id = admin.add_rule(
        contains=tag,
        has_tools=True,
        responses=[
            {
                "tool_calls": [
                    {"name": "calculator", "arguments": '{"expression": "1 +'},
                    {"name": "calculator", "arguments": {"expression": "2 * 3"}},
                ]
            }
        ],
    )
    completion = await client.chat.completions.create(
        model="m", messages=user(f"calc {tag}"), tools=[CALCULATOR]
    )
    calls = function_calls(completion)
    assert [c.function.arguments for c in calls] == [
        '{"expression": "1 +',
        '{"expression": "2 * 3"}',
    ]
    assert len({c.id for c in calls}) == 2
    assert completion.choices[0].finish_reason == "tool_calls"
    assert admin.requests(contains=tag)[0].rule_id == rule_id


async def test_hang_times_out_without_blocking_others(
    client: AsyncOpenAI, admin: ScriptedLLMAdmin
) -> None:
    tag = marker()
    admin.add_rule(contains=tag, responses=[{"hang": True}])
    hanging = [
        asyncio.create_task(
            client.chat.completions.create(model="m", messages=user(tag), timeout=0.5)
        )
        for _ in range(20)
    ]
    started = time.monotonic()
    fast = await client.chat.completions.create(model="m", messages=user("quick"), timeout=5)
    assert time.monotonic() - started < 0.5
    assert fast.choices[0].message.content == "Answer: quick"
    results = await asyncio.gather(*hanging, return_exceptions=True)
    assert all(isinstance(result, openai.APITimeoutError) for result in results)


async def test_streaming_content_and_usage(client: AsyncOpenAI, admin: ScriptedLLMAdmin) -> None:
    tag = marker()
    text = "a streamed answer with quite a few words in it"
    admin.add_rule(contains=tag, responses=[{"content": text}])
    stream = await client.chat.completions.create(
        model="m", messages=user(tag), stream=True, stream_options={"include_usage": True}
    )
    pieces: list[str] = []
    finish: list[str] = []
    usage = None
    async with stream:
        async for chunk in stream:
            assert chunk.model == "m"
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                pieces.append(choice.delta.content or "")
                if choice.finish_reason:
                    finish.append(choice.finish_reason)
    assert "".join(pieces) == text
    assert finish == ["stop"]
    assert usage is not None
    assert usage.completion_tokens == (len(text) + 3) // 4
    assert admin.requests(contains=tag)[0].stream


async def test_streaming_tool_calls(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="m", messages=user("2 + 2"), tools=[CALCULATOR], stream=True
    )
    arguments = ""
    names: list[str] = []
    async with stream:
        async for chunk in stream:
            assert chunk.usage is None
            for call in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
                if call.function and call.function.name:
                    names.append(call.function.name)
                arguments += (call.function.arguments or "") if call.function else ""
    assert names == ["calculator"]
    assert json.loads(arguments) == {"expression": "2 + 2"}


async def test_streamed_tool_calls_come_in_pieces_with_usage_last(
    client: AsyncOpenAI, admin: ScriptedLLMAdmin
) -> None:
    tag = marker()
    calls = [
        {"id": "call_1", "name": "calculator", "arguments": {"expression": "12 * (3 + 4)"}},
        {"name": "fetch_url", "arguments": {"url": "https://example.com/some/page"}},
    ]
    admin.add_rule(contains=tag, responses=[{"tool_calls": calls}])
    stream = await client.chat.completions.create(
        model="m",
        messages=user(tag),
        tools=[CALCULATOR],
        stream=True,
        stream_options={"include_usage": True},
    )
    headers: list[tuple[int, str | None, str | None]] = []
    pieces: dict[int, list[str]] = {0: [], 1: []}
    finish: list[str] = []
    chunks = []
    async with stream:
        async for chunk in stream:
            chunks.append(chunk)
            for choice in chunk.choices:
                for call in choice.delta.tool_calls or []:
                    if call.id is not None:
                        name = call.function.name if call.function else None
                        headers.append((call.index, call.id, name))
                    if call.function and call.function.arguments:
                        pieces[call.index].append(call.function.arguments)
                if choice.finish_reason:
                    finish.append(choice.finish_reason)
    assert [(index, name) for index, _, name in headers] == [(0, "calculator"), (1, "fetch_url")]
    assert headers[0][1] == "call_1"
    assert (headers[1][1] or "").startswith("call_")
    assert len(pieces[0]) > 1
    assert len(pieces[1]) > 1
    assert json.loads("".join(pieces[0])) == {"expression": "12 * (3 + 4)"}
    assert json.loads("".join(pieces[1])) == {"url": "https://example.com/some/page"}
    assert finish == ["tool_calls"]
    # Usage comes alone in the last chunk, and only then.
    assert [chunk.usage is not None for chunk in chunks] == [False] * (len(chunks) - 1) + [True]
    assert chunks[-1].choices == []


async def test_a_stream_scripted_to_break_drops_the_connection_midway(
    client: AsyncOpenAI, admin: ScriptedLLMAdmin
) -> None:
    tag = marker()
    text = "a streamed answer that will not arrive whole, however long it waits"
    admin.add_rule(
        contains=tag,
        repeat_last=False,
        responses=[{"content": text, "stream_break_after": 2}, {"content": text}],
    )
    received: list[str] = []
    stream = await client.chat.completions.create(model="m", messages=user(tag), stream=True)

    async def read_all() -> None:
        async with stream:
            async for chunk in stream:
                received.extend(choice.delta.content or "" for choice in chunk.choices)

    with pytest.raises(openai.APIConnectionError):
        await read_all()
    assert 0 < len("".join(received)) < len(text)
    # The rule's next answer is whole.
    again = await client.chat.completions.create(model="m", messages=user(tag), stream=True)
    async with again:
        whole = "".join([c.choices[0].delta.content or "" async for c in again if c.choices])
    assert whole == text


async def test_a_response_scripted_to_close_the_connection_sends_not_a_byte(
    client: AsyncOpenAI, admin: ScriptedLLMAdmin
) -> None:
    tag = marker()
    admin.add_rule(
        contains=tag,
        repeat_last=False,
        responses=[{"close_without_answer": True}, {"content": "after the drop"}],
    )
    with pytest.raises(openai.APIConnectionError) as raised:
        await client.chat.completions.create(model="m", messages=user(tag))
    # As httpx tells a server closing a kept-alive connection as the request went out.
    assert str(raised.value.__cause__) == "Server disconnected without sending a response."
    again = await client.chat.completions.create(model="m", messages=user(tag))
    assert again.choices[0].message.content == "after the drop"
    assert len(admin.requests(contains=tag)) == 2  # the dropped request arrived too


async def test_refusal_finish_reason_and_usage_override(
    client: AsyncOpenAI, admin: ScriptedLLMAdmin
) -> None:
    tag = marker()
    admin.add_rule(
        contains=tag,
        repeat_last=False,
        responses=[
            {"refusal": "I can't help with that."},
            {"content": "cut", "finish_reason": "length", "usage": {"completion_tokens": 99}},
            {"finish_reason": "content_filter"},
        ],
    )
    refused = await client.chat.completions.create(model="m", messages=user(tag))
    assert refused.choices[0].message.refusal == "I can't help with that."
    assert refused.choices[0].message.content is None

    truncated = await client.chat.completions.create(model="m", messages=user(tag))
    assert truncated.choices[0].finish_reason == "length"
    assert truncated.usage is not None
    assert truncated.usage.completion_tokens == 99

    filtered = await client.chat.completions.create(model="m", messages=user(tag))
    assert filtered.choices[0].finish_reason == "content_filter"
    assert filtered.choices[0].message.content == f"Answer: {tag}"

    # Exhausted: the automatic behaviour answers again.
    after = await client.chat.completions.create(model="m", messages=user(tag))
    assert after.choices[0].finish_reason == "stop"
    assert [r.rule_id is None for r in admin.requests(contains=tag)] == [False, False, False, True]


async def test_json_response_and_schema_name_match(
    client: AsyncOpenAI, admin: ScriptedLLMAdmin
) -> None:
    tag = marker()
    admin.add_rule(
        contains=tag,
        schema_name="tributary_plan",
        responses=[
            {"json": {"steps": [{"title": "t", "instruction": "i", "expected_output": ""}]}}
        ],
    )
    plan_format: Any = {
        "type": "json_schema",
        "json_schema": {"name": "tributary_plan", "schema": Plan.model_json_schema()},
    }
    planned = await client.chat.completions.create(
        model="m", messages=user(tag), response_format=plan_format
    )
    assert Plan.model_validate_json(planned.choices[0].message.content or "").steps[0].title == "t"
    plain = await client.chat.completions.create(model="m", messages=user(tag))
    assert plain.choices[0].message.content == f"Answer: {tag}"


async def test_delay_and_global_latency(client: AsyncOpenAI, admin: ScriptedLLMAdmin) -> None:
    tag = marker()
    admin.add_rule(contains=tag, responses=[{"delay_ms": 200}])
    started = time.monotonic()
    delayed = await client.chat.completions.create(model="m", messages=user(tag))
    assert time.monotonic() - started >= 0.2
    assert delayed.choices[0].message.content == f"Answer: {tag}"

    admin.set_latency(150)
    assert admin.config().latency_ms == 150
    started = time.monotonic()
    await asyncio.gather(
        *(client.chat.completions.create(model="m", messages=user("x")) for _ in range(10))
    )
    elapsed = time.monotonic() - started
    assert 0.15 <= elapsed < 1.0


async def test_models_health_and_invalid_requests(
    llm: ScriptedLLMServer, client: AsyncOpenAI, admin: ScriptedLLMAdmin
) -> None:
    models = await client.models.list()
    assert [m.id for m in models.data] == ["scripted-llm"]
    assert (await client.models.retrieve("anything")).id == "anything"
    assert admin.health()
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="m", messages=[])
    assert caught.value.param == "messages"
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{llm.base_url}/chat/completions", content=b"{not json")
        assert response.status_code == 400
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
        missing = await http.get(f"{llm.url}/nope")
        assert missing.status_code == 404
        assert "error" in missing.json()


def test_admin_rejects_bad_rules_and_manages_rules(
    llm: ScriptedLLMServer, admin: ScriptedLLMAdmin
) -> None:
    bad_rule = {"match": {"contain": "typo"}, "responses": [{"content": "x"}]}
    with pytest.raises(ValidationError):
        admin.add_rule(bad_rule)
    rejected = httpx.post(f"{llm.url}/_admin/rules", json=bad_rule)
    assert rejected.status_code == 400
    assert "match.contain" in rejected.json()["error"]["message"]
    first = admin.add_rule(contains="a", responses=[{"content": "x"}], rule_id="mine")
    assert first == "mine"
    with pytest.raises(AdminError) as duplicate:
        admin.add_rule(contains="a", responses=[{"content": "x"}], rule_id="mine")
    assert duplicate.value.status_code == 409
    second = admin.add_rule(responses=[{"content": "y"}])
    assert [r.id for r in admin.rules()] == ["mine", second]
    admin.delete_rule("mine")
    assert [r.id for r in admin.rules()] == [second]
    admin.clear_rules()
    assert admin.rules() == []
    assert admin.set_config(max_recorded_requests=5).max_recorded_requests == 5


async def test_recording_is_bounded(client: AsyncOpenAI, admin: ScriptedLLMAdmin) -> None:
    admin.set_config(max_recorded_requests=3)
    for index in range(5):
        await client.chat.completions.create(model="m", messages=user(f"n{index}"))
    assert [r.messages[0]["content"] for r in admin.requests()] == ["n2", "n3", "n4"]
    admin.clear_requests()
    assert admin.requests() == []


async def test_async_context_manager_and_stop_releases_hanging_requests() -> None:
    async with ScriptedLLMServer(latency_ms=0) as server:
        server.admin.add_rule(responses=[{"hang": True}])
        async with AsyncOpenAI(base_url=server.base_url, api_key="x", max_retries=0) as sdk:
            pending = asyncio.create_task(
                sdk.chat.completions.create(model="m", messages=user("h"))
            )
            await asyncio.sleep(0.2)
            started = time.monotonic()
            await asyncio.to_thread(server.stop)
            # Released, not cut off: a hang that uvicorn cancelled at the end of its
            # graceful shutdown would reach the client as a dropped connection. The
            # bound only rules out waiting on the hang (shared CI machines are slow).
            assert time.monotonic() - started < 8
            with pytest.raises(openai.APIStatusError) as caught:
                await pending
            assert caught.value.status_code == 503
            assert "released" in caught.value.message


async def test_stopped_and_started_again_it_refuses_meanwhile_and_comes_back_as_it_was() -> None:
    server = await asyncio.to_thread(ScriptedLLMServer().start)
    try:
        port = server.port
        server.admin.add_rule(contains="#outage", responses=[{"content": "scripted"}])
        async with AsyncOpenAI(base_url=server.base_url, api_key="x", max_retries=0) as sdk:
            await sdk.chat.completions.create(model="m", messages=user("before #outage"))
            await asyncio.to_thread(server.stop)
            with pytest.raises(openai.APIConnectionError):
                await sdk.chat.completions.create(model="m", messages=user("during #outage"))
            await asyncio.to_thread(server.start)
            assert server.port == port
            after = await sdk.chat.completions.create(model="m", messages=user("after #outage"))
        assert after.choices[0].message.content == "scripted"  # its rules kept
        assert [r.messages[0]["content"] for r in server.admin.requests()] == [
            "before #outage",
            "after #outage",
        ]
    finally:
        await asyncio.to_thread(server.stop)
