"""MCP tools from a real server over the streamable HTTP transport on 127.0.0.1.

The server is ``tests/fixtures/mcp/arith_server.py --http`` in a subprocess on
a free loopback port; it requires a bearer token, so these tests also show
that configured headers reach the server and that their values stay out of
logs and errors.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import Any

import pytest
from mcp import Client

from tests.support.mcp_servers import ARITH_SERVER, http_fixture_server
from tributary_agent_runner.tools import mcp_connection
from tributary_agent_runner.tools.mcp_config import McpSettings
from tributary_agent_runner.tools.mcp_tools import McpToolset
from tributary_agent_runner.tools.registry import ToolError, ToolRegistry

pytestmark = pytest.mark.integration

TOKEN = "http-token-0123456789abcdef"
URL_KEY = "http-urlkey-0123456789"


@contextmanager
def http_server(port: int = 0) -> Iterator[int]:
    """Run the fixture server over HTTP; yields its port and stops it on exit."""
    with http_fixture_server(
        ARITH_SERVER, "--http", port=port, env={"MCP_TEST_TOKEN": TOKEN}
    ) as bound:
        yield bound


def remote(port: int, token: str = TOKEN, **options: Any) -> dict[str, Any]:
    return {
        "name": "remote",
        "transport": "streamable_http",
        "url": f"http://127.0.0.1:{port}/mcp?key={URL_KEY}",
        "headers": {"Authorization": f"Bearer {token}"},
        "timeout_s": 10,
        **options,
    }


def toolset(*servers: dict[str, Any], registry: ToolRegistry, **settings: Any) -> McpToolset:
    return McpToolset(McpSettings.model_validate({"servers": servers, **settings}), registry)


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with http_server() as port:
        yield port


@pytest.fixture(scope="module")
async def remote_tools(port: int) -> AsyncIterator[ToolRegistry]:
    registry = ToolRegistry()
    async with toolset(remote(port, tools=["add", "fail", "picture"]), registry=registry):
        yield registry


async def test_tools_are_listed_over_http_with_the_prefix(remote_tools: ToolRegistry) -> None:
    assert remote_tools.names() == ["remote__add", "remote__fail", "remote__picture"]
    parameters = remote_tools.get("remote__add").openai_schema()["function"]["parameters"]
    assert parameters["required"] == ["a", "b"]


async def test_a_call_over_http_returns_the_result(remote_tools: ToolRegistry) -> None:
    assert await remote_tools.get("remote__add").invoke('{"a": 40, "b": 2}') == "42"
    picture = await remote_tools.get("remote__picture").invoke("{}")
    assert "[image: image/png," in picture


async def test_errors_over_http_are_tool_errors_without_secrets(remote_tools: ToolRegistry) -> None:
    with pytest.raises(ToolError) as caught:
        await remote_tools.get("remote__fail").invoke(f'{{"reason": "Bearer {TOKEN}"}}')
    message = str(caught.value)
    assert message.startswith("remote__fail failed:")
    assert "fail was asked to fail" in message
    assert TOKEN not in message


async def test_a_rejected_token_skips_the_server_without_logging_it(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    # Our own lines, at every level. (The HTTP client's request lines show the URL
    # at INFO; the services' logging setup keeps that logger at WARNING.)
    caplog.set_level(logging.DEBUG, logger="tributary_agent_runner")
    registry = ToolRegistry()
    async with toolset(remote(port, token="wrong-token-0123456789"), registry=registry):
        assert registry.names() == []
    ours = "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith("tributary_agent_runner")
    )
    assert f"could not connect to MCP server 'remote' (http://127.0.0.1:{port})" in ours
    for secret in ("wrong-token-0123456789", URL_KEY):
        assert secret not in ours


async def test_a_restarted_server_gets_a_new_session() -> None:
    registry = ToolRegistry()
    async with AsyncExitStack() as stack:
        with http_server() as port:
            mcp = toolset(remote(port), registry=registry, reconnect_delay_s=0)
            await stack.enter_async_context(mcp)
            add = registry.get("remote__add")
            assert await add.invoke('{"a": 1, "b": 2}') == "3"
        # The server is gone (its session with it): calls fail cleanly...
        with pytest.raises(ToolError, match=r"remote__add failed: .*MCP server 'remote'"):
            await add.invoke('{"a": 1, "b": 2}')
        # ...until it is back, when a new session is opened for the next call.
        with http_server(port):
            assert await add.invoke('{"a": 2, "b": 2}') == "4"


async def test_an_expired_session_is_replaced_and_the_call_sent_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Session-based (pre-2026) servers forget sessions when they restart and
    # answer 404; the refused call did not run, so even a tool with effects is resent.
    monkeypatch.setattr(mcp_connection, "Client", functools.partial(Client, mode="legacy"))
    registry = ToolRegistry()
    async with AsyncExitStack() as stack:
        with http_server() as port:
            await stack.enter_async_context(toolset(remote(port), registry=registry))
            assert await registry.get("remote__add").invoke('{"a": 1, "b": 2}') == "3"
        with http_server(port):
            echo = registry.get("remote__echo_env")
            assert echo.read_only is False
            assert await echo.invoke('{"name": "MCP_TEST_TOKEN"}') == "[redacted]"
