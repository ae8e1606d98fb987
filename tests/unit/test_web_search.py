"""web_search against fake SearXNG and Brave endpoints served on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr

from tributary_agent_runner.tools.registry import Tool, ToolError
from tributary_agent_runner.tools.web_search import (
    SearchResult,
    WebSearchArgs,
    WebSearchSettings,
    format_results,
    make_web_search_tool,
    search_provider_from_settings,
    web_search_tool_from_settings,
)

API_KEY = "brave-secret-key-123"


@dataclass
class Seen:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class FakeProviders:
    """One loopback server playing SearXNG (under /searx) and Brave (under /brave)."""

    port: int = 0
    seen: list[Seen] = field(default_factory=list)

    @property
    def searxng_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/searx/"

    @property
    def brave_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/brave/res/v1/web/search"

    def respond(self, seen: Seen) -> tuple[int, bytes]:
        q = seen.query.get("q", [""])[0]
        if seen.path == "/nojson/search":
            return 403, b"Forbidden"  # what SearXNG answers when format=json is not enabled
        if seen.path == "/searx/search":
            if seen.query.get("format") != ["json"]:
                return 403, b"Forbidden"
            if q == "explode":
                return 500, b"Internal Server Error"
            if q == "garbage":
                return 200, b"<html>not json</html>"
            if q == "nothing":
                return 200, json.dumps({"results": [], "unresponsive_engines": []}).encode()
            if q == "engines down":
                payload = {"results": [], "unresponsive_engines": [["google", "timeout"]]}
                return 200, json.dumps(payload).encode()
            results = [
                {
                    "title": f"Result {i} for {q}",
                    "url": f"https://example.org/{i}",
                    "content": f"Snippet &amp; text {i} " + "long " * (200 if i == 2 else 0),
                    "engine": "fake",
                }
                for i in range(1, 13)
            ]
            results.insert(1, {"title": "no url", "content": "dropped"})
            return 200, json.dumps({"query": q, "results": results}).encode()
        if seen.path == "/brave/res/v1/web/search":
            if seen.headers.get("x-subscription-token") != API_KEY:
                return 401, json.dumps({"error": "bad token"}).encode()
            count = int(seen.query["count"][0])
            results = [
                {
                    "title": f"Brave <strong>{q}</strong> {i}",
                    "url": f"https://brave.example/{i}",
                    "description": f"A <strong>bold</strong> claim &#x27;{i}&#x27;",
                }
                for i in range(1, count + 1)
            ]
            return 200, json.dumps({"type": "search", "web": {"results": results}}).encode()
        return 404, b"not found"


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeProviders]:
    providers = FakeProviders()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            request_line, *lines = head.split("\r\n")
            parts = urlsplit(request_line.split(" ")[1])
            headers = {
                k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines if x)
            }
            seen = Seen(parts.path, parse_qs(parts.query), headers)
            providers.seen.append(seen)
            status, body = providers.respond(seen)
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    providers.port = server.sockets[0].getsockname()[1]
    try:
        yield providers
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "PROVIDER",
        "SEARXNG_URL",
        "BRAVE_API_KEY",
        "BRAVE_URL",
        "MAX_RESULTS",
        "TIMEOUT_S",
    ):
        monkeypatch.delenv(f"TRIBUTARY_WEB_SEARCH_{name}", raising=False)
    return monkeypatch


def searxng_tool(fake: FakeProviders, **settings: object) -> Tool[WebSearchArgs]:
    tool = web_search_tool_from_settings(
        WebSearchSettings(searxng_url=fake.searxng_url, **settings)  # type: ignore[arg-type]
    )
    assert tool is not None
    return tool


async def search(tool: Tool[WebSearchArgs], **args: object) -> str:
    return await tool.invoke(json.dumps(args))


# --- configuration ---------------------------------------------------------------------------


def test_not_configured_means_no_tool(clean_env: pytest.MonkeyPatch) -> None:
    assert web_search_tool_from_settings(WebSearchSettings()) is None
    assert web_search_tool_from_settings() is None


def test_blank_environment_values_mean_not_configured(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TRIBUTARY_WEB_SEARCH_SEARXNG_URL", "")
    clean_env.setenv("TRIBUTARY_WEB_SEARCH_BRAVE_API_KEY", " ")
    assert web_search_tool_from_settings() is None


def test_configured_from_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TRIBUTARY_WEB_SEARCH_SEARXNG_URL", "http://searxng:8080")
    clean_env.setenv("TRIBUTARY_WEB_SEARCH_MAX_RESULTS", "3")
    tool = web_search_tool_from_settings()
    assert tool is not None
    assert tool.name == "web_search"
    assert tool.read_only
    assert tool.openai_schema()["function"]["parameters"]["required"] == ["query"]


def test_provider_choice(clean_env: pytest.MonkeyPatch) -> None:
    both = {"searxng_url": "http://s", "brave_api_key": SecretStr(API_KEY)}
    assert search_provider_from_settings(WebSearchSettings(**both)).name == "searxng"  # type: ignore[union-attr, arg-type]
    explicit = WebSearchSettings(provider="brave", **both)  # type: ignore[arg-type]
    assert search_provider_from_settings(explicit).name == "brave"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="TRIBUTARY_WEB_SEARCH_BRAVE_API_KEY"):
        search_provider_from_settings(WebSearchSettings(provider="brave"))
    with pytest.raises(ValueError, match="absolute http"):
        search_provider_from_settings(WebSearchSettings(searxng_url="searxng:8080"))


def test_api_key_is_not_in_settings_repr(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TRIBUTARY_WEB_SEARCH_BRAVE_API_KEY", API_KEY)
    settings = WebSearchSettings()
    assert API_KEY not in repr(settings)
    assert API_KEY not in str(settings.model_dump())


# --- SearXNG -------------------------------------------------------------------------------------


async def test_searxng_results_as_numbered_list(fake: FakeProviders) -> None:
    result = await search(searxng_tool(fake), query="tributary streams")
    lines = result.splitlines()
    assert lines[0] == "Results for 'tributary streams':"
    assert lines[1:4] == [
        "1. Result 1 for tributary streams",
        "   https://example.org/1",
        "   Snippet & text 1",
    ]
    assert "no url" not in result
    assert "dropped" not in result
    assert "5. Result 5 for tributary streams" in result
    assert "6. " not in result  # default max_results is 5
    snippet_2 = lines[6]
    assert len(snippet_2) <= 3 + 300
    assert snippet_2.endswith("…")
    request = fake.seen[-1]
    assert request.path == "/searx/search"
    assert request.query["q"] == ["tributary streams"]
    assert request.query["format"] == ["json"]


async def test_searxng_count_is_bounded_by_settings(fake: FakeProviders) -> None:
    tool = searxng_tool(fake, max_results=3)
    assert "2. Result 2" in await search(tool, query="x", count=2)
    assert "3. " not in await search(tool, query="x", count=2)
    assert "4. " not in await search(tool, query="x", count=20)
    with pytest.raises(ToolError, match="invalid arguments"):
        await search(tool, query="x", count=0)
    with pytest.raises(ToolError, match="invalid arguments"):
        await search(tool, query="")


async def test_searxng_no_results(fake: FakeProviders) -> None:
    assert await search(searxng_tool(fake), query="nothing") == "No results for 'nothing'."


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("explode", "web search failed: the searxng search provider answered HTTP 500"),
        ("garbage", "web search failed: the searxng search provider sent invalid JSON"),
        ("engines down", "web search failed: the searxng search engines did not respond"),
    ],
)
async def test_searxng_errors(fake: FakeProviders, query: str, message: str) -> None:
    with pytest.raises(ToolError) as info:
        await search(searxng_tool(fake), query=query)
    assert str(info.value) == message


async def test_searxng_json_format_disabled(fake: FakeProviders) -> None:
    tool = web_search_tool_from_settings(
        WebSearchSettings(searxng_url=f"http://127.0.0.1:{fake.port}/nojson")
    )
    assert tool is not None
    with pytest.raises(ToolError, match=r"answered HTTP 403 \(is the json format enabled"):
        await search(tool, query="x")


async def test_searxng_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tool = web_search_tool_from_settings(WebSearchSettings(searxng_url=f"http://127.0.0.1:{port}"))
    assert tool is not None
    with pytest.raises(
        ToolError, match=r"^web search failed: could not reach the searxng search provider"
    ):
        await search(tool, query="x")


async def test_searxng_credentials_in_url_become_basic_auth(fake: FakeProviders) -> None:
    url = fake.searxng_url.replace("http://", "http://op:s3cret@")
    tool = web_search_tool_from_settings(WebSearchSettings(searxng_url=url))
    assert tool is not None
    await search(tool, query="auth")
    assert fake.seen[-1].headers["authorization"].startswith("Basic ")


# --- Brave --------------------------------------------------------------------------------


def brave_settings(fake: FakeProviders, key: str = API_KEY) -> WebSearchSettings:
    return WebSearchSettings(brave_api_key=SecretStr(key), brave_url=fake.brave_url)


async def test_brave_results(fake: FakeProviders) -> None:
    tool = web_search_tool_from_settings(brave_settings(fake))
    assert tool is not None
    result = await search(tool, query="rivers", count=2)
    assert result.splitlines() == [
        "Results for 'rivers':",
        "1. Brave rivers 1",
        "   https://brave.example/1",
        "   A bold claim '1'",
        "2. Brave rivers 2",
        "   https://brave.example/2",
        "   A bold claim '2'",
    ]
    assert fake.seen[-1].query["count"] == ["2"]


async def test_brave_key_never_leaks(fake: FakeProviders, caplog: pytest.LogCaptureFixture) -> None:
    wrong = "wrong-key-456"
    tool = web_search_tool_from_settings(brave_settings(fake, key=wrong))
    assert tool is not None
    with caplog.at_level(logging.DEBUG), pytest.raises(ToolError) as info:
        await search(tool, query="x")
    message = str(info.value)
    assert message == (
        "web search failed: the brave search provider answered HTTP 401 (the API key was rejected)"
    )
    assert wrong not in message
    assert all(wrong not in record.getMessage() for record in caplog.records)
    assert fake.seen[-1].headers["x-subscription-token"] == wrong  # sent only as a header
    assert wrong not in json.dumps(fake.seen[-1].query)


def test_format_results_clips_long_fields() -> None:
    text = format_results("q", [SearchResult("T" * 500, "https://x.example/", "")])
    title_line = text.splitlines()[1]
    assert len(title_line) == len("1. ") + 200
    assert len(text.splitlines()) == 3  # no snippet line when there is no snippet


async def test_custom_provider_protocol() -> None:
    class Static:
        name = "static"

        async def search(self, query: str, count: int) -> list[SearchResult]:
            return [SearchResult(f"{query} {i}", f"https://s.example/{i}", "") for i in range(9)]

    tool = make_web_search_tool(Static(), max_results=2)
    result = await search(tool, query="q")
    assert "2. q 1" in result
    assert "3. " not in result
