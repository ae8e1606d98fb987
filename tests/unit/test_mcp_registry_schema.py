"""Registry tools described by a JSON schema (as MCP tools are) instead of a pydantic model."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest
from pydantic import BaseModel

from tributary_agent_runner.tools.registry import (
    JsonArguments,
    Tool,
    ToolArgumentsInvalid,
    ToolError,
    ToolRegistry,
)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "minLength": 1},
        "lines": {"$ref": "#/$defs/range"},
    },
    "required": ["path"],
    "$defs": {
        "range": {
            "type": "array",
            "items": {"type": "integer", "minimum": 1},
            "maxItems": 2,
        }
    },
}


async def _echo(args: JsonArguments) -> str:
    return repr(sorted(args.root.items()))


def _schema_tool(schema: dict[str, Any] = SCHEMA) -> Tool[JsonArguments]:
    return Tool(
        name="files__read",
        description="Read a file.",
        args_model=JsonArguments,
        run=_echo,
        parameters=schema,
    )


def test_the_json_schema_is_what_the_model_is_offered() -> None:
    registry = ToolRegistry([_schema_tool()])
    (offered,) = registry.openai_schemas()
    assert offered["function"]["name"] == "files__read"
    assert offered["function"]["parameters"] == SCHEMA


async def test_valid_arguments_reach_the_tool_as_a_json_object() -> None:
    out = await _schema_tool().invoke('{"path": "a.txt", "lines": [1, 5]}')
    assert out == "[('lines', [1, 5]), ('path', 'a.txt')]"


async def test_empty_arguments_are_an_empty_object() -> None:
    with pytest.raises(ToolArgumentsInvalid, match="'path' is a required property"):
        await _schema_tool().invoke("")


async def test_every_problem_is_named_with_its_location() -> None:
    with pytest.raises(ToolArgumentsInvalid) as caught:
        await _schema_tool().invoke('{"path": "", "lines": [0, 2, 3]}')
    message = str(caught.value)
    assert message.startswith("invalid arguments for files__read: ")
    assert "path: '' should be non-empty" in message
    assert "lines.0: 0 is less than the minimum of 1" in message
    assert "lines: [0, 2, 3] is too long" in message


async def test_long_problem_lists_and_values_are_clipped() -> None:
    schema = {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(9)}}
    raw = "{" + ", ".join(f'"p{i}": "{"v" * 500}"' for i in range(9)) + "}"
    with pytest.raises(ToolArgumentsInvalid) as caught:
        await _schema_tool(schema).invoke(raw)
    message = str(caught.value)
    assert message.endswith("; and 4 more")
    assert len(message) < 1500


def test_an_invalid_schema_is_refused_when_the_tool_is_built() -> None:
    with pytest.raises(ValueError, match="not a valid JSON schema"):
        _schema_tool({"type": "object", "properties": {"a": {"type": "no-such-type"}}})


async def test_remote_references_are_never_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("a schema reference was fetched")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    schema = {
        "type": "object",
        "properties": {"a": {"$ref": "http://169.254.169.254/latest/meta-data/schema.json"}},
    }
    with pytest.raises(ToolError, match="does not resolve within the schema"):
        await _schema_tool(schema).invoke('{"a": 1}')


async def test_pydantic_tools_are_unchanged() -> None:
    class Args(BaseModel):
        n: int

    async def double(args: Args) -> str:
        return str(args.n * 2)

    tool = Tool(name="double", description="Double.", args_model=Args, run=double)
    assert tool.parameters is None
    assert tool.openai_schema()["function"]["parameters"] == Args.model_json_schema()
    assert await tool.invoke('{"n": 4}') == "8"
    with pytest.raises(ToolArgumentsInvalid, match="invalid arguments for double: n"):
        await tool.invoke('{"n": "x"}')
