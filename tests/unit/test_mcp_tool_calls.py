"""What an MCP tool call returns or raises, with the session replaced by a scripted one."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError
from mcp.types import INTERNAL_ERROR, REQUEST_TIMEOUT, CallToolResult, TextContent
from mcp.types import Tool as McpToolInfo

from tributary_agent_runner.tools.idempotency import calling_with
from tributary_agent_runner.tools.mcp_config import McpSettings, McpStdioServer
from tributary_agent_runner.tools.mcp_connection import McpConnection, McpUnavailable
from tributary_agent_runner.tools.mcp_tools import make_mcp_tool
from tributary_agent_runner.tools.registry import (
    Tool,
    ToolArgumentsInvalid,
    ToolError,
    ToolTimedOut,
)

SECRET = "sk-live-0123456789"
SCHEMA = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
    "additionalProperties": False,
}

Outcome = CallToolResult | BaseException


class ScriptedConnection(McpConnection):
    """Answers calls from a script instead of a server, recording what was sent."""

    def __init__(self, outcome: Outcome, *, timeout_s: float = 5.0) -> None:
        settings = McpSettings.model_validate(
            {
                "servers": [
                    {
                        "name": "calc",
                        "transport": "stdio",
                        "command": "calc-mcp",
                        "env": {"CALC_TOKEN": SECRET},
                        "timeout_s": timeout_s,
                    }
                ]
            }
        )
        server = settings.servers[0]
        assert isinstance(server, McpStdioServer)
        super().__init__(server)
        self.outcome = outcome
        self.calls: list[tuple[str, dict[str, Any], float, bool]] = []
        self.keys: list[str | None] = []

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        timeout_s: float,
        retry_if_dropped: bool,
        idempotency_key: str | None = None,
    ) -> CallToolResult:
        self.calls.append((name, arguments, timeout_s, retry_if_dropped))
        self.keys.append(idempotency_key)
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


def _tool(connection: McpConnection, *, max_result_chars: int = 10_000) -> Tool[Any]:
    info = McpToolInfo(name="add", description="Add.", input_schema=SCHEMA)
    return make_mcp_tool(connection, info, name="calc__add", max_result_chars=max_result_chars)


def _text(text: str, *, is_error: bool = False) -> CallToolResult:
    return CallToolResult(content=[TextContent(text=text)], is_error=is_error)


async def test_a_valid_call_returns_the_text_of_the_result() -> None:
    connection = ScriptedConnection(_text("3"), timeout_s=4)
    assert await _tool(connection).invoke('{"a": 1, "b": 2}') == "3"
    assert connection.calls == [("add", {"a": 1, "b": 2}, 4.0, False)]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ('{"a": 1}', "'b' is a required property"),
        ('{"a": "one", "b": 2}', "a: 'one' is not of type 'integer'"),
        ('{"a": 1, "b": 2, "c": 3}', "Additional properties are not allowed"),
        ("[1, 2]", "is not of type 'object'"),
        ('{"a": 1,', "not valid JSON"),
    ],
)
async def test_invalid_arguments_are_refused_before_the_call(raw: str, problem: str) -> None:
    connection = ScriptedConnection(_text("unused"))
    with pytest.raises(ToolArgumentsInvalid, match="invalid arguments for calc__add") as caught:
        await _tool(connection).invoke(raw)
    assert problem in str(caught.value)
    assert connection.calls == []


async def test_error_results_raise_with_the_servers_text_redacted() -> None:
    connection = ScriptedConnection(_text(f"token {SECRET} was refused", is_error=True))
    with pytest.raises(ToolError) as caught:
        await _tool(connection).invoke('{"a": 1, "b": 2}')
    assert str(caught.value) == "calc__add failed: token [redacted] was refused"


async def test_results_are_redacted_and_capped() -> None:
    connection = ScriptedConnection(_text(f"{SECRET} " + "y" * 3000))
    out = await _tool(connection, max_result_chars=1000).invoke('{"a": 1, "b": 2}')
    assert SECRET not in out
    assert "cut at 1000" in out


async def test_a_server_side_timeout_is_a_tool_timeout() -> None:
    connection = ScriptedConnection(MCPError(REQUEST_TIMEOUT, "Request 'tools/call' timed out"))
    with pytest.raises(ToolTimedOut, match=r"calc__add timed out after 5s"):
        await _tool(connection).invoke('{"a": 1, "b": 2}')


async def test_a_hung_call_is_stopped_by_the_tool_timeout() -> None:
    class Hung(ScriptedConnection):
        async def call_tool(
            self,
            name: str,
            arguments: dict[str, Any],
            *,
            timeout_s: float,
            retry_if_dropped: bool,
            idempotency_key: str | None = None,
        ) -> CallToolResult:
            await asyncio.sleep(60)
            raise AssertionError("not reached")

    # The tool's own limit is the server's timeout_s plus a grace period; shortened here.
    tool = dataclasses.replace(_tool(Hung(_text(""))), timeout_s=0.05)
    with pytest.raises(ToolTimedOut, match=r"timed out after 0\.05s"):
        await tool.invoke('{"a": 1, "b": 2}')


async def test_mcp_errors_are_tool_errors_with_the_message_redacted() -> None:
    connection = ScriptedConnection(MCPError(INTERNAL_ERROR, f"bad credentials {SECRET}"))
    with pytest.raises(ToolError) as caught:
        await _tool(connection).invoke('{"a": 1, "b": 2}')
    message = str(caught.value)
    assert message.startswith("calc__add failed: the MCP server answered error -32603")
    assert SECRET not in message


async def test_an_unavailable_server_is_a_tool_error() -> None:
    connection = ScriptedConnection(McpUnavailable("MCP server 'calc' is unavailable"))
    with pytest.raises(ToolError, match="calc__add failed: MCP server 'calc' is unavailable"):
        await _tool(connection).invoke('{"a": 1, "b": 2}')


async def test_an_unusable_answer_is_a_tool_error_without_details() -> None:
    connection = ScriptedConnection(RuntimeError(f"structured content invalid: {SECRET}"))
    with pytest.raises(ToolError) as caught:
        await _tool(connection).invoke('{"a": 1, "b": 2}')
    assert str(caught.value) == (
        "calc__add failed: the MCP server sent an unusable answer (RuntimeError)"
    )


async def test_read_only_tools_may_be_resent_after_a_drop() -> None:
    connection = ScriptedConnection(_text("3"))
    info = McpToolInfo(name="add", input_schema=SCHEMA, annotations={"readOnlyHint": True})
    tool = make_mcp_tool(connection, info, name="calc__add", max_result_chars=100)
    assert tool.read_only
    await tool.invoke('{"a": 1, "b": 2}')
    assert connection.calls[0][3] is True


async def test_the_call_carries_the_idempotency_key_the_loop_set() -> None:
    connection = ScriptedConnection(_text("3"), timeout_s=4)
    tool = _tool(connection)
    await tool.invoke('{"a": 1, "b": 2}')
    with calling_with("k-123"):
        await tool.invoke('{"a": 1, "b": 2}')
    assert connection.keys == [None, "k-123"]
