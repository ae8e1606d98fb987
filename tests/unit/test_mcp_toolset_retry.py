"""A server that cannot be reached at start is tried again until its tools are offered."""

from __future__ import annotations

import asyncio

from mcp.types import Tool as McpToolInfo

from tributary_agent_runner.tools.mcp_config import McpSettings
from tributary_agent_runner.tools.mcp_connection import McpUnavailable
from tributary_agent_runner.tools.mcp_tools import McpToolset
from tributary_agent_runner.tools.registry import ToolRegistry

SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


def late_server_toolset(
    registry: ToolRegistry, *, unreachable_for: int
) -> tuple[McpToolset, list[None]]:
    """A toolset whose one server refuses ``unreachable_for`` listings, then answers."""
    settings = McpSettings.model_validate(
        {
            "servers": [{"name": "late", "transport": "stdio", "command": "late-mcp"}],
            "retry_interval_s": 0.001,
            "retry_max_interval_s": 0.002,
        }
    )
    toolset = McpToolset(settings, registry)
    attempts: list[None] = []

    async def list_tools() -> list[McpToolInfo]:
        attempts.append(None)
        if len(attempts) <= unreachable_for:
            raise McpUnavailable("could not connect to MCP server 'late'")
        return [McpToolInfo(name="add", description="Add.", input_schema=SCHEMA)]

    [connection] = toolset._connections
    connection.list_tools = list_tools  # type: ignore[method-assign]
    return toolset, attempts


async def test_tools_of_a_server_that_answers_later_are_registered() -> None:
    registry = ToolRegistry()
    toolset, attempts = late_server_toolset(registry, unreachable_for=4)
    async with toolset:
        assert registry.names() == []  # start() does not wait for the late server
        for _ in range(1000):
            if registry.names():
                break
            await asyncio.sleep(0.001)
        assert registry.names() == ["late__add"]
    assert len(attempts) == 5


async def test_closing_the_toolset_stops_the_retries() -> None:
    toolset, attempts = late_server_toolset(ToolRegistry(), unreachable_for=10**9)
    await toolset.start()
    for _ in range(1000):
        if len(attempts) >= 3:
            break
        await asyncio.sleep(0.001)
    await toolset.aclose()
    stopped_at = len(attempts)
    await asyncio.sleep(0.02)
    assert len(attempts) == stopped_at
