"""MCP tools from a real server started over the stdio transport.

The server is ``tests/fixtures/mcp/arith_server.py`` run as a subprocess by the
MCP SDK, exactly as an operator-configured stdio server would be. No Kafka or
Redis is needed; these tests are marked ``integration`` because they start
processes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.support.twins import memory_step_history
from tributary_agent_runner.loop import run_agent
from tributary_agent_runner.tools.calculator import calculator_tool
from tributary_agent_runner.tools.mcp_config import McpSettings
from tributary_agent_runner.tools.mcp_tools import McpToolset
from tributary_agent_runner.tools.registry import (
    ToolArgumentsInvalid,
    ToolError,
    ToolRegistry,
    ToolTimedOut,
)
from tributary_shared.core.completions import Completion, Message, Role, ToolCall
from tributary_shared.core.events import PlannedStep, TokenUsage
from tributary_shared.core.untrusted import untrusted

pytestmark = pytest.mark.integration

SERVER_SCRIPT = Path(__file__).parents[1] / "fixtures" / "mcp" / "arith_server.py"
SECRET = "stdio-secret-0123456789"
HEADER_SECRET = "header-secret-0123456789"
URL_SECRET = "url-secret-0123456789"
ARITH_TOOLS = ["add", "crash", "echo_env", "fail", "picture", "pid", "slow"]


def stdio_server(name: str, *script_args: str, **options: Any) -> dict[str, Any]:
    return {
        "name": name,
        "transport": "stdio",
        "command": sys.executable,
        "args": [str(SERVER_SCRIPT), *script_args],
        **options,
    }


def toolset(*servers: dict[str, Any], registry: ToolRegistry, **settings: Any) -> McpToolset:
    return McpToolset(McpSettings.model_validate({"servers": servers, **settings}), registry)


@pytest.fixture(scope="module")
async def arith() -> AsyncIterator[ToolRegistry]:
    """The built-in calculator plus the arith server's tools, shared by the module."""
    registry = ToolRegistry([calculator_tool])
    server = stdio_server("arith", timeout_s=3, env={"ARITH_TOKEN": SECRET, "ARITH_MODE": "demo"})
    async with toolset(server, registry=registry):
        yield registry


async def test_tools_are_offered_with_the_server_prefix(arith: ToolRegistry) -> None:
    assert arith.names() == sorted(["calculator", *(f"arith__{t}" for t in ARITH_TOOLS)])


async def test_the_input_schema_is_offered_as_parameters(arith: ToolRegistry) -> None:
    schema = arith.get("arith__add").openai_schema()["function"]
    assert schema["description"] == "Add two integers."
    parameters = schema["parameters"]
    assert parameters["type"] == "object"
    assert parameters["required"] == ["a", "b"]
    assert {name: p["type"] for name, p in parameters["properties"].items()} == {
        "a": "integer",
        "b": "integer",
    }


async def test_read_only_follows_the_tools_annotation(arith: ToolRegistry) -> None:
    assert arith.get("arith__add").read_only is True
    assert arith.get("arith__fail").read_only is False


async def test_a_call_returns_the_result_text(arith: ToolRegistry) -> None:
    assert await arith.get("arith__add").invoke('{"a": 20, "b": 22}') == "42"


async def test_invalid_arguments_are_refused_before_the_call(arith: ToolRegistry) -> None:
    with pytest.raises(ToolArgumentsInvalid) as caught:
        await arith.get("arith__add").invoke('{"a": "twenty"}')
    message = str(caught.value)
    assert "'b' is a required property" in message
    assert "a: 'twenty' is not of type 'integer'" in message


async def test_a_tool_that_raises_is_a_tool_error(arith: ToolRegistry) -> None:
    with pytest.raises(ToolError, match=r"arith__fail failed: .*fail was asked to fail: disk full"):
        await arith.get("arith__fail").invoke('{"reason": "disk full"}')


async def test_a_slow_tool_times_out_and_the_session_survives(arith: ToolRegistry) -> None:
    with pytest.raises(ToolTimedOut, match="arith__slow timed out after 3s"):
        await arith.get("arith__slow").invoke('{"seconds": 60}')
    assert await arith.get("arith__add").invoke('{"a": 1, "b": 1}') == "2"


async def test_non_text_parts_are_summarised(arith: ToolRegistry) -> None:
    out = await arith.get("arith__picture").invoke("{}")
    assert out.splitlines()[0] == "a single pixel"
    assert out.splitlines()[1].startswith("[image: image/png,")


async def test_env_reaches_the_server_and_secrets_do_not_come_back(arith: ToolRegistry) -> None:
    echo = arith.get("arith__echo_env")
    assert await echo.invoke('{"name": "ARITH_MODE"}') == "demo"
    assert await echo.invoke('{"name": "ARITH_TOKEN"}') == "[redacted]"
    with pytest.raises(ToolError) as caught:
        await arith.get("arith__fail").invoke(f'{{"reason": "{SECRET}"}}')
    assert SECRET not in str(caught.value)


async def test_the_allow_list_limits_the_tools() -> None:
    registry = ToolRegistry()
    server = stdio_server("only", tools=["add", "no_such_tool"])
    async with toolset(server, registry=registry) as mcp:
        assert registry.names() == ["only__add"]
        assert [tool.name for tool in mcp.tools()] == ["only__add"]


async def test_unreachable_servers_are_skipped_without_leaking_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = ToolRegistry()
    servers = [
        stdio_server("up", tools=["add"]),
        {
            "name": "down",
            "transport": "streamable_http",
            "url": f"http://127.0.0.1:1/mcp?key={URL_SECRET}",
            "headers": {"Authorization": f"Bearer {HEADER_SECRET}"},
        },
        {
            "name": "missing",
            "transport": "stdio",
            "command": "/nonexistent/mcp-server",
            "env": {"TOKEN": SECRET},
        },
    ]
    async with toolset(*servers, registry=registry) as mcp:
        assert registry.names() == ["up__add"]
        assert await registry.get("up__add").invoke('{"a": 2, "b": 3}') == "5"
        await mcp.aclose()
    logged = caplog.text
    assert "MCP server 'down' (http://127.0.0.1:1): connection failed" in logged
    assert "MCP server 'missing' (stdio mcp-server): FileNotFoundError" in logged
    assert "its tools are not offered until it answers" in logged
    for secret in (SECRET, HEADER_SECRET, URL_SECRET):
        assert secret not in logged


async def test_a_server_that_never_answers_is_given_up_on(caplog: pytest.LogCaptureFixture) -> None:
    registry = ToolRegistry()
    mute = {
        "name": "mute",
        "transport": "stdio",
        "command": sys.executable,
        "args": ["-c", "import time; time.sleep(60)"],
    }
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with toolset(mute, registry=registry, connect_timeout_s=1):
        assert registry.names() == []
    assert loop.time() - started < 15  # gave up, and the process was stopped on close
    assert "MCP server 'mute' (stdio python" in caplog.text


async def test_a_server_that_comes_up_later_is_added(tmp_path: Path) -> None:
    flag = tmp_path / "up"
    registry = ToolRegistry()
    server = stdio_server("late", "--only-if-exists", str(flag), tools=["add"])
    async with toolset(server, registry=registry, retry_interval_s=0.2) as mcp:
        assert mcp.tools() == []
        flag.touch()
        for _ in range(600):  # the retry runs in the background: up to 60 s
            if "late__add" in registry.names():
                break
            await asyncio.sleep(0.1)
        assert await registry.get("late__add").invoke('{"a": 1, "b": 2}') == "3"


async def test_a_crashed_server_is_restarted_on_the_next_call() -> None:
    registry = ToolRegistry()
    async with toolset(stdio_server("flaky"), registry=registry, reconnect_delay_s=0):
        with pytest.raises(ToolError, match=r"connection to MCP server 'flaky'.* was lost"):
            await registry.get("flaky__crash").invoke("{}")
        assert await registry.get("flaky__add").invoke('{"a": 2, "b": 2}') == "4"


async def test_after_a_silent_drop_only_read_only_calls_are_resent() -> None:
    registry = ToolRegistry()
    async with toolset(stdio_server("killed"), registry=registry, reconnect_delay_s=0):
        pid = int(await registry.get("killed__pid").invoke("{}"))
        os.kill(pid, signal.SIGKILL)
        # add is read-only: sent again on a new session, the caller sees only the result.
        assert await registry.get("killed__add").invoke('{"a": 3, "b": 4}') == "7"

        pid = int(await registry.get("killed__pid").invoke("{}"))
        os.kill(pid, signal.SIGKILL)
        # echo_env may have effects as far as we know: not resent, the model is told.
        with pytest.raises(ToolError, match="was lost during the call"):
            await registry.get("killed__echo_env").invoke('{"name": "HOME"}')
        assert await registry.get("killed__add").invoke('{"a": 1, "b": 1}') == "2"


class ScriptedModel:
    """Stands in for the LLM: replies in order and keeps what it was shown."""

    def __init__(self, *replies: Completion) -> None:
        self._replies = list(replies)
        self.tools: list[Sequence[dict[str, Any]] | None] = []
        self.messages: list[list[Message]] = []

    async def complete(
        self,
        *,
        role: Role,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] | None = None,
        iteration: int | None = None,
    ) -> Completion:
        self.tools.append(tools)
        self.messages.append(list(messages))
        return self._replies.pop(0)


def _reply(content: str | None, *calls: ToolCall) -> Completion:
    return Completion(
        content=content,
        tool_calls=calls,
        finish_reason="tool_calls" if calls else "stop",
        model="m",
        usage=TokenUsage(prompt_tokens=1, completion_tokens=1),
    )


async def test_the_agent_loop_offers_and_calls_mcp_tools(arith: ToolRegistry) -> None:
    model = ScriptedModel(
        _reply(None, ToolCall(id="c1", name="arith__add", arguments='{"a": 6}')),
        _reply(None, ToolCall(id="c2", name="arith__add", arguments='{"a": 6, "b": 36}')),
        _reply("42"),
    )
    step = PlannedStep(step_id="s1", index=0, title="Add", instruction="6 + 36?")
    outcome = await run_agent(
        llm=model,
        tools=arith,
        step=step,
        task="math",
        max_iterations=5,
        history=memory_step_history(),
    )
    assert outcome.result == "42"
    offered = {schema["function"]["name"] for schema in model.tools[0] or ()}
    assert {"arith__add", "calculator"} <= offered
    invalid, valid = model.messages[1][-1], model.messages[2][-1]
    assert invalid["role"] == "tool"
    assert "'b' is a required property" in str(invalid["content"])
    assert valid == {
        "role": "tool",
        "tool_call_id": "c2",
        "content": untrusted("42", source="tool arith__add"),  # the server's answer, as data
    }
