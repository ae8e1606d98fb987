"""TRIBUTARY_AGENT_FETCH_URL_ALLOWED_TARGETS opens exactly the listed address and port."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from pydantic import ValidationError

from tributary_agent_runner.__main__ import builtin_tools
from tributary_agent_runner.settings import AgentSettings
from tributary_agent_runner.tools.registry import ToolError, ToolRegistry
from tributary_shared.core.netguard import address_and_port

ENV = "TRIBUTARY_AGENT_FETCH_URL_ALLOWED_TARGETS"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        (" 10.0.0.5:1 ", ("10.0.0.5", 1)),
        ("[fd00::5]:443", ("fd00::5", 443)),
        ("[::ffff:127.0.0.1]:80", ("127.0.0.1", 80)),  # as the guard checks it
    ],
)
def test_targets_are_address_literals_with_a_port(text: str, expected: tuple[str, int]) -> None:
    assert address_and_port(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("localhost:8080", "not an IP address"),
        ("127.0.0.1", "not address:port"),
        ("127.0.0.1:0", "not address:port"),
        ("127.0.0.1:65536", "not address:port"),
        ("127.0.0.1:http", "not address:port"),
        ("fd00::5:443", "in brackets"),
        ("0x7f.1:80", "not an IP address"),  # only the plain form: what is allowed is obvious
    ],
)
def test_anything_else_is_refused(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        address_and_port(text)


def test_a_bad_entry_stops_the_agent_runner_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, '["intranet.example:80"]')
    with pytest.raises(ValidationError, match="names are refused"):
        AgentSettings()


@pytest.fixture
async def two_loopback_sites() -> AsyncIterator[tuple[int, int]]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = b"inside the fence"
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    servers = [await asyncio.start_server(answer, "127.0.0.1", 0) for _ in range(2)]
    try:
        ports = [server.sockets[0].getsockname()[1] for server in servers]
        yield ports[0], ports[1]
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()


async def fetch(tools: ToolRegistry, url: str) -> str:
    return await tools.get("fetch_url").invoke(json.dumps({"url": url}))


async def test_loopback_stays_refused_by_default(
    two_loopback_sites: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    tools = builtin_tools(AgentSettings())
    with pytest.raises(ToolError, match="refused: loopback address"):
        await fetch(tools, f"http://127.0.0.1:{two_loopback_sites[0]}/")


async def test_the_listed_target_is_fetched_and_its_neighbour_is_not(
    two_loopback_sites: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed, other = two_loopback_sites
    monkeypatch.setenv(ENV, json.dumps([f"127.0.0.1:{allowed}"]))
    tools = builtin_tools(AgentSettings())
    assert "inside the fence" in await fetch(tools, f"http://127.0.0.1:{allowed}/page")
    with pytest.raises(ToolError, match="refused: loopback address"):
        await fetch(tools, f"http://127.0.0.1:{other}/page")
