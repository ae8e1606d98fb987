"""Pure logic of the scripted LLM: task splitting, schema filling, auto answers, rules."""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field, ValidationError

from tributary_scripted_llm.auto import auto_reply, find_expression, find_url, quote
from tributary_scripted_llm.chat_request import RequestError, parse_chat_request
from tributary_scripted_llm.models import Match, Rule, ScriptedResponse, UsageSpec
from tributary_scripted_llm.plan import build_plan, extract_task, split_task, step_title
from tributary_scripted_llm.render import (
    error_body,
    estimate_tokens,
    stream_events,
    usage_for,
)
from tributary_scripted_llm.reply import Reply, ToolCall
from tributary_scripted_llm.rules import RuleBook, matches
from tributary_scripted_llm.schema_fill import schema_instance


def chat(
    *messages: dict[str, Any],
    model: str = "m",
    tools: list[str] | None = None,
    **extra: Any,
) -> Any:
    body: dict[str, Any] = {"model": model, "messages": list(messages), **extra}
    if tools is not None:
        body["tools"] = [
            {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
            for name in tools
        ]
    return parse_chat_request(body)


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


# --- task extraction and splitting -------------------------------------------------


def test_extract_task_uses_text_after_task_line() -> None:
    prompt = "You are a planner.\nTask: add 2 + 2; summarise it\nRespond in JSON."
    assert extract_task(prompt) == "add 2 + 2; summarise it"


def test_extract_task_reads_paragraph_after_bare_task_line() -> None:
    prompt = "Plan this.\n  Task:\n\nfirst part;\nsecond part\n\nConstraints: none"
    assert extract_task(prompt) == "first part; second part"


def test_extract_task_without_task_line_is_whole_text() -> None:
    assert extract_task("  just do it  ") == "just do it"


@pytest.mark.parametrize(
    ("task", "parts"),
    [
        ("a; b ;c", ["a", "b", "c"]),
        ("one thing", ["one thing"]),
        ("a;; ;b;", ["a", "b"]),
        ("  spaced  ", ["spaced"]),
    ],
)
def test_split_task(task: str, parts: list[str]) -> None:
    assert split_task(task) == parts


def test_step_title_is_first_six_words() -> None:
    assert step_title("one two three four five six seven eight") == "one two three four five six"
    assert step_title("short  title") == "short title"


class _Step(BaseModel):
    title: str
    instruction: str
    tool_hint: Literal["calculator", "fetch_url", "none"]
    depends_on: list[int]
    weight: float = Field(ge=1)
    notes: str | None


class _Plan(BaseModel):
    steps: list[_Step]
    rationale: str
    confidence: int = Field(gt=0)


def test_build_plan_one_step_per_part_and_valid_against_schema() -> None:
    schema = _Plan.model_json_schema()
    plan = build_plan(schema, "Context...\nTask: compute 1 + 2; fetch https://x.test now; sum up")
    parsed = _Plan.model_validate(plan)
    assert [step.instruction for step in parsed.steps] == [
        "compute 1 + 2",
        "fetch https://x.test now",
        "sum up",
    ]
    assert parsed.steps[0].title == "compute 1 + 2"
    assert parsed.steps[0].tool_hint == "calculator"
    assert parsed.steps[0].weight == 1
    assert parsed.confidence == 1


def test_build_plan_without_semicolon_has_one_step() -> None:
    plan = build_plan(_Plan.model_json_schema(), "Write a poem about rivers and their many moods")
    assert len(plan["steps"]) == 1
    assert plan["steps"][0]["title"] == "Write a poem about rivers and"


def test_build_plan_respects_max_items_without_losing_parts() -> None:
    schema = {
        "type": "object",
        "properties": {"steps": {"type": "array", "maxItems": 2, "items": {"type": "object"}}},
        "required": ["steps"],
    }
    plan = build_plan(schema, "a; b; c")
    assert [s["instruction"] for s in plan["steps"]] == ["a", "b; c"]


# --- generic schema instances -------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string"}, ""),
        ({"type": "number"}, 0),
        ({"type": "integer"}, 0),
        ({"type": "boolean"}, False),
        ({"type": "array", "items": {"type": "string"}}, []),
        ({"type": "object"}, {}),
        ({"type": "null"}, None),
        ({"enum": ["b", "a"]}, "b"),
        ({"const": 3}, 3),
        ({"type": "string", "default": "d"}, "d"),
        ({"type": ["null", "string"]}, ""),
        ({"anyOf": [{"type": "null"}, {"type": "integer"}]}, 0),
        ({"type": "string", "minLength": 3}, "xxx"),
        ({"type": "string", "format": "date-time"}, "1970-01-01T00:00:00Z"),
        ({"type": "integer", "minimum": 5}, 5),
        ({"type": "integer", "exclusiveMinimum": 5}, 6),
        ({"type": "integer", "maximum": -2}, -2),
        ({"type": "array", "items": {"type": "integer"}, "minItems": 2}, [0, 0]),
        ({}, None),
    ],
)
def test_schema_instance_simple(schema: dict[str, Any], expected: Any) -> None:
    assert schema_instance(schema) == expected


def test_schema_instance_fills_only_required_properties_recursively() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "inner": {
                "type": "object",
                "properties": {"flag": {"type": "boolean"}, "skip": {"type": "string"}},
                "required": ["flag"],
            },
            "optional": {"type": "string"},
        },
        "required": ["name", "inner"],
    }
    assert schema_instance(schema) == {"name": "", "inner": {"flag": False}}


def test_schema_instance_resolves_refs_and_all_of() -> None:
    schema = {
        "$defs": {
            "A": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
            "B": {"type": "object", "properties": {"b": {"type": "string"}}, "required": ["b"]},
        },
        "type": "object",
        "properties": {"x": {"allOf": [{"$ref": "#/$defs/A"}, {"$ref": "#/$defs/B"}]}},
        "required": ["x"],
    }
    assert schema_instance(schema) == {"x": {"a": 0, "b": ""}}


def test_schema_instance_terminates_on_recursive_schema() -> None:
    schema = {
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {"child": {"$ref": "#/$defs/Node"}},
                "required": ["child"],
            }
        },
        "$ref": "#/$defs/Node",
    }
    value = schema_instance(schema)
    depth = 0
    while isinstance(value, dict):
        value = value["child"]
        depth += 1
    assert 1 < depth < 100


def test_schema_instance_validates_pydantic_model() -> None:
    class Inner(BaseModel):
        kind: Literal["x", "y"]
        values: list[float]

    class Outer(BaseModel):
        inner: Inner
        maybe: Inner | None
        label: str = Field(min_length=2)
        count: int = 7

    Outer.model_validate(schema_instance(Outer.model_json_schema()))


# --- auto behaviour -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expression"),
    [
        ("What is 12 * (3 + 4)?", "12 * (3 + 4)"),
        ("compute 2+2.", "2+2"),
        ("(see 3 / 4) please", "3 / 4"),
        ("minus: -3 + 10", "-3 + 10"),
        ("step 1.5 * 2 then", "1.5 * 2"),
        ("no math in 2024 here", None),
        ("only words", None),
        ("numbers 1 2 3", None),
    ],
)
def test_find_expression(text: str, expression: str | None) -> None:
    assert find_expression(text) == expression


def test_find_url_strips_trailing_punctuation() -> None:
    assert find_url("Read https://example.com/a?b=1. Then") == "https://example.com/a?b=1"
    assert find_url("see (http://x.test/y)") == "http://x.test/y"
    assert find_url("no link") is None


def test_quote_flattens_and_truncates() -> None:
    assert quote("a\n b\tc") == "a b c"
    assert quote("x" * 20, limit=10) == "xxxxxxx..."


def test_auto_plain_answer_quotes_last_user_message() -> None:
    request = chat({"role": "system", "content": "sys"}, user("first"), user("Summarise: R1, R2"))
    assert auto_reply(request).content == "Answer: Summarise: R1, R2"


def test_quote_reads_data_marked_untrusted_without_its_markers() -> None:
    wrapped = '<untrusted_data source="tool calculator">\n6 * 7 = 42\n</untrusted_data>'
    assert quote(f"## part\n{wrapped}") == "## part 6 * 7 = 42"
    assert quote("a <b> c </untrusted_dat") == "a <b> c </untrusted_dat"


def test_auto_calls_calculator_then_reports_result() -> None:
    request = chat(user("Compute 6 * 7 please"), tools=["fetch_url", "calculator"])
    reply = auto_reply(request)
    assert reply.content is None
    assert [(c.name, json.loads(c.arguments)) for c in reply.tool_calls] == [
        ("calculator", {"expression": "6 * 7"})
    ]
    assert reply.effective_finish_reason == "tool_calls"

    follow_up = chat(
        user("Compute 6 * 7 please"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "calculator", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
        tools=["calculator"],
    )
    assert auto_reply(follow_up).content == "Based on calculator: 42"
    assert auto_reply(follow_up).tool_calls == []


def test_auto_fetch_url_when_no_expression() -> None:
    request = chat(user("Fetch https://example.com/page."), tools=["calculator", "fetch_url"])
    (call,) = auto_reply(request).tool_calls
    assert call.name == "fetch_url"
    assert json.loads(call.arguments) == {"url": "https://example.com/page"}


def test_auto_text_when_no_tool_fits_or_tool_choice_none() -> None:
    assert auto_reply(chat(user("hello"), tools=["calculator"])).content == "Answer: hello"
    request = chat(user("1 + 1"), tools=["calculator"], tool_choice="none")
    assert auto_reply(request).tool_calls == []
    # The calculator is only used when offered.
    assert auto_reply(chat(user("1 + 1"), tools=["search"])).tool_calls == []


def test_auto_structured_outputs() -> None:
    plan_format = {
        "type": "json_schema",
        "json_schema": {"name": "tributary_plan", "schema": _Plan.model_json_schema()},
    }
    request = chat(user("Task: a; b"), response_format=plan_format)
    plan = json.loads(auto_reply(request).content or "")
    assert [step["instruction"] for step in plan["steps"]] == ["a", "b"]

    other = {
        "type": "json_schema",
        "json_schema": {
            "name": "verdict",
            "schema": {
                "type": "object",
                "properties": {"ok": {"type": "boolean"}},
                "required": ["ok"],
            },
        },
    }
    assert json.loads(auto_reply(chat(user("x"), response_format=other)).content or "") == {
        "ok": False
    }
    json_object = chat(user("hi"), response_format={"type": "json_object"})
    assert json.loads(auto_reply(json_object).content or "") == {"answer": "Answer: hi"}


def test_parse_chat_request_rejects_invalid_bodies() -> None:
    with pytest.raises(RequestError):
        parse_chat_request([])
    with pytest.raises(RequestError) as missing_model:
        parse_chat_request({"messages": [user("x")]})
    assert missing_model.value.param == "model"
    with pytest.raises(RequestError):
        parse_chat_request({"model": "m", "messages": []})


def test_message_content_parts_are_text() -> None:
    request = chat({"role": "user", "content": [{"type": "text", "text": "part one"}]})
    assert request.last_user_text == "part one"


# --- rules --------------------------------------------------------------------------


def rule(match: dict[str, Any], *contents: str, repeat_last: bool = True) -> Rule:
    return Rule(
        match=Match(**match),
        responses=[ScriptedResponse(content=c) for c in contents],
        repeat_last=repeat_last,
    )


def test_rules_checked_in_insertion_order_and_last_response_repeats() -> None:
    book = RuleBook()
    first = book.add(rule({"contains": "#a"}, "one", "two"))
    book.add(rule({"contains": "#a"}, "never"))
    request = chat(user("task #a"))
    served = [book.next_response(request) for _ in range(3)]
    assert [(rid, r.content) for rid, r in filter(None, served)] == [
        (first, "one"),
        (first, "two"),
        (first, "two"),
    ]


def test_exhausted_rule_stops_matching() -> None:
    book = RuleBook()
    book.add(rule({"contains": "#b"}, "once", repeat_last=False))
    second = book.add(rule({}, "fallback"))
    request = chat(user("#b"))
    first_answer = book.next_response(request)
    assert first_answer is not None
    assert first_answer[1].content == "once"
    assert book.next_response(request) == (second, book.status()[1].rule.responses[0])
    book.remove(second)
    assert book.next_response(request) is None
    assert book.status()[0].exhausted


def test_rule_ids_are_unique() -> None:
    book = RuleBook()
    book.add(Rule(id="x", responses=[ScriptedResponse(content="a")]))
    with pytest.raises(ValueError, match="already exists"):
        book.add(Rule(id="x", responses=[ScriptedResponse(content="b")]))


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ({}, True),
        ({"contains": "SYSTEM-MARK"}, True),
        ({"contains": "absent"}, False),
        ({"model": "gpt-x"}, True),
        ({"model": "gpt"}, False),
        ({"has_tools": True}, True),
        ({"has_tools": False}, False),
        ({"has_tool_result": False}, True),
        ({"schema_name": "tributary_plan"}, True),
        ({"schema_name": "other"}, False),
        ({"last_user_contains": "question"}, True),
        ({"last_user_contains": "SYSTEM-MARK"}, False),
        ({"contains": "question", "model": "other"}, False),
    ],
)
def test_match_conditions(match: dict[str, Any], expected: bool) -> None:
    request = chat(
        {"role": "system", "content": "SYSTEM-MARK"},
        user("the question"),
        model="gpt-x",
        tools=["calculator"],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "tributary_plan", "schema": {}},
        },
    )
    assert matches(Match(**match), request) is expected


def test_scripted_response_validation() -> None:
    with pytest.raises(ValidationError):
        ScriptedResponse.model_validate({"content": "a", "json": {}})
    with pytest.raises(ValidationError):
        ScriptedResponse.model_validate({"contnet": "typo"})
    with pytest.raises(ValidationError):
        ScriptedResponse.model_validate({"error": {"message": "x"}})
    with pytest.raises(ValidationError):
        Rule.model_validate({"responses": []})
    assert ScriptedResponse.model_validate({"json": []}).has_json
    round_trip = Rule(responses=[ScriptedResponse(content="x")]).model_dump()
    assert Rule.model_validate(round_trip).responses[0].content == "x"
    assert not ScriptedResponse.model_validate({"delay_ms": 5}).defines_message


# --- rendering ----------------------------------------------------------------------


def test_usage_estimate_and_override() -> None:
    request = chat(user("x" * 9))
    reply = Reply(content="y" * 4)
    assert estimate_tokens(0) == 0
    assert usage_for(request, reply, None) == {
        "prompt_tokens": 3,
        "completion_tokens": 1,
        "total_tokens": 4,
    }
    assert usage_for(request, reply, UsageSpec(completion_tokens=10)) == {
        "prompt_tokens": 3,
        "completion_tokens": 10,
        "total_tokens": 13,
    }


def test_error_body_defaults_and_overrides() -> None:
    assert error_body(429)["error"]["code"] == "rate_limit_exceeded"
    assert error_body(599)["error"]["type"] == "server_error"
    assert error_body(418)["error"]["type"] == "invalid_request_error"


def test_stream_events_reassemble() -> None:
    reply = Reply(
        content="one two three four five six",
        tool_calls=[ToolCall("calculator", '{"expression": "1+1"}')],
    )
    events = list(
        stream_events(
            completion_id="chatcmpl-scripted-7",
            created=0,
            model="m",
            reply=reply,
            usage={"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
            include_usage=True,
        )
    )
    assert events[-1] == b"data: [DONE]\n\n"
    chunks = [json.loads(e.removeprefix(b"data: ")) for e in events[:-1]]
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1])
    assert content == reply.content
    arguments = "".join(
        call["function"].get("arguments", "")
        for c in chunks[:-1]
        for call in c["choices"][0]["delta"].get("tool_calls") or []
    )
    assert arguments == '{"expression": "1+1"}'
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] == 3
    assert all(c["usage"] is None for c in chunks[:-1])
