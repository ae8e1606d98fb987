"""How listed MCP tools become agent tools: names, schemas, allow-list, read-only, results."""

from __future__ import annotations

import re

import pytest
from mcp.types import (
    AudioContent,
    BlobResourceContents,
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
    TextResourceContents,
    ToolAnnotations,
)
from mcp.types import Tool as McpToolInfo

from tributary_agent_runner.tools.mcp_config import McpSettings, McpStdioServer
from tributary_agent_runner.tools.mcp_connection import McpConnection
from tributary_agent_runner.tools.mcp_results import NO_OUTPUT, result_text
from tributary_agent_runner.tools.mcp_tools import build_tools, parameters_schema, tool_name

OPENAI_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

ADD_SCHEMA = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
}


def _connection(**server: object) -> McpConnection:
    settings = McpSettings.model_validate(
        {"servers": [{"name": "calc", "transport": "stdio", "command": "calc-mcp", **server}]}
    )
    first = settings.servers[0]
    assert isinstance(first, McpStdioServer)
    return McpConnection(first)


def _listed() -> list[McpToolInfo]:
    return [
        McpToolInfo(
            name="add",
            description="Add two integers.",
            input_schema=ADD_SCHEMA,
            annotations=ToolAnnotations(read_only_hint=True),
        ),
        McpToolInfo(name="reset", input_schema={"type": "object"}),
        McpToolInfo(name="broken", input_schema={"type": "object", "properties": 3}),
    ]


@pytest.mark.parametrize(
    ("server", "tool", "expected"),
    [
        ("files", "read_file", "files__read_file"),
        ("files", "read-file", "files__read-file"),
    ],
)
def test_names_keep_valid_tool_names(server: str, tool: str, expected: str) -> None:
    assert tool_name(server, tool) == expected


@pytest.mark.parametrize(
    "tool", ["read.file", "lire fichier", "données/lire", "x" * 80, "a" * 59 + "b", "a" * 59 + "c"]
)
def test_names_are_sanitised_to_the_openai_charset(tool: str) -> None:
    name = tool_name("files", tool)
    assert OPENAI_NAME.fullmatch(name)
    assert name.startswith("files__")


def test_sanitised_names_stay_distinct() -> None:
    names = {tool_name("s", t) for t in ["a.b", "a_b", "a b", "x" * 70 + "1", "x" * 70 + "2"]}
    assert len(names) == 5


def test_parameters_schema_fills_what_openai_expects() -> None:
    assert parameters_schema({}) == {"type": "object", "properties": {}}
    assert parameters_schema(ADD_SCHEMA) == ADD_SCHEMA
    assert parameters_schema({"type": "object"}) == {"type": "object", "properties": {}}


def test_tools_are_prefixed_offer_their_schema_and_skip_bad_schemas() -> None:
    tools = build_tools(_connection(), _listed(), max_result_chars=1000)
    by_name = {tool.name: tool for tool in tools}
    assert sorted(by_name) == ["calc__add", "calc__reset"]  # "broken" has an invalid schema
    schema = by_name["calc__add"].openai_schema()
    assert schema["function"]["parameters"] == ADD_SCHEMA
    assert schema["function"]["description"] == "Add two integers."
    assert "reset" in by_name["calc__reset"].description
    assert by_name["calc__add"].read_only is True  # readOnlyHint
    assert by_name["calc__reset"].read_only is False  # the default: may have effects


def test_server_read_only_marks_every_tool() -> None:
    tools = build_tools(_connection(read_only=True), _listed(), max_result_chars=1000)
    assert all(tool.read_only for tool in tools)


def test_allow_list_filters_and_reports_unknown_names(caplog: pytest.LogCaptureFixture) -> None:
    connection = _connection(tools=["add", "multiply"])
    tools = build_tools(connection, _listed(), max_result_chars=1000)
    assert [tool.name for tool in tools] == ["calc__add"]
    assert "multiply" in caplog.text


def test_taken_names_are_not_registered_twice() -> None:
    tools = build_tools(_connection(), _listed(), max_result_chars=1000, taken={"calc__add"})
    assert [tool.name for tool in tools] == ["calc__reset"]


def test_timeout_of_the_tool_covers_the_servers_timeout() -> None:
    (add, *_) = build_tools(_connection(timeout_s=3), _listed(), max_result_chars=1000)
    assert add.timeout_s > 3


def test_text_parts_are_joined_and_other_parts_summarised() -> None:
    result = CallToolResult(
        content=[
            TextContent(text="first"),
            TextContent(text="second"),
            ImageContent(data="AAAA", mime_type="image/png"),
            AudioContent(data="AAAAAA==", mime_type="audio/wav"),
            ResourceLink(name="report", uri="file:///r.txt"),
            EmbeddedResource(resource=TextResourceContents(uri="file:///t.txt", text="inline")),
            EmbeddedResource(
                resource=BlobResourceContents(
                    uri="file:///b.pdf", blob="AAAA", mime_type="application/pdf"
                )
            ),
        ]
    )
    assert result_text(result, 10_000).splitlines() == [
        "first",
        "second",
        "[image: image/png, 3 bytes, not shown]",
        "[audio: audio/wav, 4 bytes, not shown]",
        "[resource link: report file:///r.txt]",
        "[resource file:///t.txt]",
        "inline",
        "[resource file:///b.pdf: application/pdf, 3 bytes, not shown]",
    ]


def test_structured_only_results_and_empty_results() -> None:
    assert result_text(CallToolResult(content=[], structured_content={"n": 3}), 100) == '{"n": 3}'
    assert result_text(CallToolResult(content=[]), 100) == NO_OUTPUT


def test_long_results_are_cut_with_a_note() -> None:
    text = result_text(CallToolResult(content=[TextContent(text="x" * 5000)]), 1000)
    assert text.startswith("x" * 1000)
    assert "cut at 1000 of 5000 characters" in text
