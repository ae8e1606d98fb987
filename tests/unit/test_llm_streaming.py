"""Streamed LLM answers (``TRIBUTARY_LLM_STREAM``): the same completion, sooner.

The real client and the real ``openai`` SDK talk to the scripted LLM server
in-process; every answer is asked for twice, once in one body and once streamed,
and the two completions must be equal. What the server recorded (``stream``)
shows which way each request went.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx2
import pytest
from prometheus_client import REGISTRY
from pydantic import BaseModel

from tests.support.scripted import ScriptedEndpoint, rule
from tributary_shared.core.errors import ModelError, TransientError
from tributary_shared.core.events import LLMTry
from tributary_shared.runtime.llm import Completion, LLMClient, Message
from tributary_shared.runtime.llm.structured import complete_structured

HELLO: list[Message] = [{"role": "user", "content": "hello"}]
CALCULATOR = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluates an arithmetic expression.",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}},
    },
}
LONG_TEXT = "a streamed answer of many words that arrives in several pieces, in order"

Opened = Callable[..., ScriptedEndpoint]


@pytest.fixture
async def scripted() -> AsyncIterator[Opened]:
    opened: list[ScriptedEndpoint] = []

    def open_endpoint(*responses: dict[str, Any]) -> ScriptedEndpoint:
        opened.append(ScriptedEndpoint(rule(*responses)))
        return opened[-1]

    yield open_endpoint
    for endpoint in opened:
        await endpoint.aclose()


def streaming(endpoint: ScriptedEndpoint, **overrides: object) -> LLMClient:
    return endpoint.client(TRIBUTARY_LLM_STREAM=True, **overrides)


def ttft_count(completion: Completion, role: str = "agent") -> float:
    labels = {"model": completion.model, "deployment": completion.deployment or "", "role": role}
    return REGISTRY.get_sample_value("llm_time_to_first_token_seconds_count", labels) or 0.0


def tokens(completion: Completion, kind: str, role: str = "agent") -> float:
    labels = {
        "model": completion.model,
        "deployment": completion.deployment or "",
        "role": role,
        "kind": kind,
    }
    return REGISTRY.get_sample_value("llm_tokens_total", labels) or 0.0


async def both_ways(endpoint: ScriptedEndpoint, **call: Any) -> tuple[Completion, Completion]:
    """The same call answered in one body, then streamed."""
    whole = await endpoint.client().complete(role="agent", messages=HELLO, **call)
    streamed = await streaming(endpoint).complete(role="agent", messages=HELLO, **call)
    assert [request.stream for request in endpoint.requests] == [False, True]
    return whole, streamed


async def test_a_streamed_text_answer_is_the_answer_in_one_body(scripted: Opened) -> None:
    whole, streamed = await both_ways(scripted({"content": LONG_TEXT}))
    assert streamed == whole
    assert streamed.content == LONG_TEXT
    assert streamed.finish_reason == "stop"
    assert streamed.usage.completion_tokens > 0
    assert streamed.usage.prompt_tokens > 0


async def test_streamed_tool_calls_are_assembled_from_their_deltas(scripted: Opened) -> None:
    calls = [
        {"id": "call_a", "name": "calculator", "arguments": {"expression": "12 * (3 + 4) / 7"}},
        {"id": "call_b", "name": "fetch_url", "arguments": {"url": "https://example.com/a/b"}},
        {"id": "call_c", "name": "calculator", "arguments": {"expression": "1 + 1"}},
    ]
    endpoint = scripted({"tool_calls": calls})
    whole, streamed = await both_ways(endpoint, tools=[CALCULATOR])
    assert streamed == whole
    assert [(call.id, call.name) for call in streamed.tool_calls] == [
        ("call_a", "calculator"),
        ("call_b", "fetch_url"),
        ("call_c", "calculator"),
    ]
    assert json.loads(streamed.tool_calls[0].arguments) == {"expression": "12 * (3 + 4) / 7"}
    assert streamed.finish_reason == "tool_calls"


async def test_the_server_names_streamed_tool_calls_as_in_one_body(scripted: Opened) -> None:
    endpoint = scripted(
        {"tool_calls": [{"name": "calculator", "arguments": {"expression": "2+2"}}]}
    )
    whole, streamed = await both_ways(endpoint, tools=[CALCULATOR])
    # The generated ids name the request that answered; all else is the same.
    assert streamed.tool_calls[0].id.startswith("call_")
    assert [(c.name, c.arguments) for c in streamed.tool_calls] == [
        (c.name, c.arguments) for c in whole.tool_calls
    ]


def answering(client: LLMClient) -> Callable[[Sequence[Message], dict[str, Any]], Any]:
    async def once(conversation: Sequence[Message], response_format: dict[str, Any]) -> Completion:
        return await client.complete(
            role="planner", messages=conversation, response_format=response_format
        )

    return once


class Verdict(BaseModel):
    answer: str
    confidence: float


async def test_streamed_structured_output_is_the_same(scripted: Opened) -> None:
    endpoint = scripted({"json": {"answer": "forty-two, after some thought", "confidence": 0.9}})
    results = [
        await complete_structured(
            answering(client), messages=HELLO, output=Verdict, schema_name="verdict"
        )
        for client in (endpoint.client(), streaming(endpoint))
    ]
    assert results[0] == results[1]
    assert results[1][0] == Verdict(answer="forty-two, after some thought", confidence=0.9)


async def test_a_streamed_call_counts_its_tokens(scripted: Opened) -> None:
    endpoint = scripted(
        {"content": LONG_TEXT, "usage": {"prompt_tokens": 11, "completion_tokens": 7}}
    )
    probe = await endpoint.client().complete(role="agent", messages=HELLO)
    before = (tokens(probe, "prompt"), tokens(probe, "completion"))
    streamed = await streaming(endpoint).complete(role="agent", messages=HELLO)
    assert streamed.usage.prompt_tokens == 11
    assert streamed.usage.completion_tokens == 7
    assert (tokens(probe, "prompt"), tokens(probe, "completion")) == (before[0] + 11, before[1] + 7)


async def test_time_to_first_token_is_observed_once_per_streamed_call_only(
    scripted: Opened,
) -> None:
    endpoint = scripted({"content": LONG_TEXT})
    whole = await endpoint.client().complete(role="agent", messages=HELLO)
    before = ttft_count(whole)
    await endpoint.client().complete(role="agent", messages=HELLO)
    assert ttft_count(whole) == before
    client = streaming(endpoint)
    await client.complete(role="agent", messages=HELLO)
    assert ttft_count(whole) == before + 1
    await client.complete(role="agent", messages=HELLO)
    assert ttft_count(whole) == before + 2


async def test_time_to_first_token_counts_a_tool_call_as_the_first_token(scripted: Opened) -> None:
    endpoint = scripted({"tool_calls": [{"name": "calculator", "arguments": {"expression": "1"}}]})
    streamed = await streaming(endpoint).complete(role="agent", messages=HELLO, tools=[CALCULATOR])
    assert streamed.content is None
    before = ttft_count(streamed)
    await streaming(endpoint).complete(role="agent", messages=HELLO, tools=[CALCULATOR])
    assert ttft_count(streamed) == before + 1


async def test_on_delta_hears_the_text_in_order(scripted: Opened) -> None:
    endpoint = scripted({"content": LONG_TEXT})
    heard: list[str] = []
    streamed = await streaming(endpoint).complete(
        role="agent", messages=HELLO, on_delta=heard.append
    )
    assert len(heard) > 1
    assert "".join(heard) == streamed.content == LONG_TEXT


async def test_an_async_on_delta_is_awaited(scripted: Opened) -> None:
    endpoint = scripted({"content": LONG_TEXT})
    heard: list[str] = []

    async def listen(text: str) -> None:
        await asyncio.sleep(0)
        heard.append(text)

    await streaming(endpoint).complete(role="agent", messages=HELLO, on_delta=listen)
    assert "".join(heard) == LONG_TEXT


async def test_on_delta_is_not_told_without_streaming(scripted: Opened) -> None:
    endpoint = scripted({"content": LONG_TEXT})
    heard: list[str] = []
    await endpoint.client().complete(role="agent", messages=HELLO, on_delta=heard.append)
    assert heard == []


async def test_a_stream_that_breaks_midway_is_tried_again_as_a_transient_error(
    scripted: Opened,
) -> None:
    endpoint = scripted({"content": LONG_TEXT, "stream_break_after": 3}, {"content": LONG_TEXT})
    tries: list[LLMTry] = []
    completion = await streaming(endpoint).complete(
        role="agent", messages=HELLO, on_try=tries.append
    )
    assert completion.content == LONG_TEXT
    assert len(endpoint.requests) == 2
    assert [t.error.code if t.error else None for t in tries] == ["llm_unavailable", None]
    assert tries[0].error is not None
    assert tries[0].error.error_class == "transient"


async def test_a_stream_that_keeps_breaking_fails_as_transient(scripted: Opened) -> None:
    endpoint = scripted({"content": LONG_TEXT, "stream_break_after": 2})
    with pytest.raises(TransientError) as raised:
        await streaming(endpoint, TRIBUTARY_LLM_PATIENCE_S=0).complete(role="agent", messages=HELLO)
    assert raised.value.code == "llm_unavailable"
    assert len(endpoint.requests) == 1  # no patience: the one deployment's error is final


async def test_a_stream_cut_before_its_finish_reason_is_transient(scripted: Opened) -> None:
    # Every chunk but the last few arrives and the body ends cleanly: still cut off.
    endpoint = ScriptedEndpoint(rule({"content": LONG_TEXT}))
    original = endpoint.hosts.handle_async_request

    async def cut_short(request: Any) -> Any:
        response = await original(request)
        body = await response.aread()
        events = body.split(b"\n\n")
        response._content = b"\n\n".join(events[:3]) + b"\n\n"
        return response

    endpoint.hosts.handle_async_request = cut_short  # type: ignore[method-assign]
    try:
        with pytest.raises(TransientError) as raised:
            await streaming(endpoint, TRIBUTARY_LLM_PATIENCE_S=0).complete(
                role="agent", messages=HELLO
            )
        assert raised.value.code == "llm_unavailable"
    finally:
        await endpoint.aclose()


async def test_a_streamed_call_is_bounded_by_the_request_timeout(scripted: Opened) -> None:
    endpoint = scripted({"content": LONG_TEXT, "hang": True})
    with pytest.raises(TransientError) as raised:
        await streaming(endpoint, TRIBUTARY_LLM_TIMEOUT_S=0.2, TRIBUTARY_LLM_PATIENCE_S=0).complete(
            role="agent", messages=HELLO
        )
    assert raised.value.code == "llm_timeout"


@pytest.mark.parametrize(
    ("response", "code"),
    [
        ({"content": "cut", "finish_reason": "length"}, "llm_truncated"),
        ({"finish_reason": "content_filter"}, "llm_filtered"),
        ({"refusal": "I will not help with that."}, "llm_refused"),
    ],
)
async def test_unusable_streamed_answers_fail_as_in_one_body(
    scripted: Opened, response: dict[str, Any], code: str
) -> None:
    endpoint = scripted(response)
    for client in (endpoint.client(), streaming(endpoint)):
        with pytest.raises(ModelError) as raised:
            await client.complete(role="agent", messages=HELLO)
        assert raised.value.code == code


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(event).encode() + b"\n\n" for event in events)


def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "served-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


async def test_an_error_event_midway_is_a_transient_failure() -> None:
    # What OpenAI sends when it fails after the answer began: an event with ``error``.
    body = sse(
        chunk({"role": "assistant", "content": "The answer is"}),
        {"error": {"message": "The server had an error", "type": "server_error"}},
    )
    asked: list[httpx2.Request] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        asked.append(request)
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    endpoint = ScriptedEndpoint()
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(answer)) as http:
        client = LLMClient(
            endpoint.settings(TRIBUTARY_LLM_STREAM=True, TRIBUTARY_LLM_PATIENCE_S=0),
            http_client=http,
        )
        with pytest.raises(TransientError) as raised:
            await client.complete(role="agent", messages=HELLO)
    await endpoint.aclose()
    assert raised.value.code == "llm_unavailable"
    assert json.loads(asked[0].content)["stream_options"] == {"include_usage": True}


async def test_a_stream_without_usage_counts_no_tokens_but_completes() -> None:
    # Servers that ignore ``stream_options`` send no usage chunk.
    body = (
        sse(
            chunk({"role": "assistant", "content": "fine"}),
            chunk({}, "stop"),
        )
        + b"data: [DONE]\n\n"
    )

    def answer(_: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    endpoint = ScriptedEndpoint()
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(answer)) as http:
        client = LLMClient(endpoint.settings(TRIBUTARY_LLM_STREAM=True), http_client=http)
        completion = await client.complete(role="agent", messages=HELLO)
    await endpoint.aclose()
    assert completion.content == "fine"
    assert completion.model == "served-model"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (0, 0)
