"""Tools from MCP servers, offered to agents next to the built-in ones.

:class:`McpToolset` is the lifecycle object: ``start()`` connects to every
configured server (concurrently), lists its tools and registers each as a
:class:`~.registry.Tool` named ``<server>__<tool>``, whose parameters are the
MCP tool's ``inputSchema``; ``aclose()`` closes the sessions and stops stdio
servers. Sessions stay open in between and are reopened when one drops.

A server that cannot be reached at start is logged and skipped, not fatal:
the agent-runner still serves steps with the other tools. Its tools cannot be
offered before they are listed, so it is tried again in the background (with
growing pauses) and its tools are added to the registry once it answers.

Each call validates the arguments against the schema (see ``Tool.parameters``)
before anything is sent, runs under the server's ``timeout_s``, and returns
the result's text; ``isError`` results, MCP errors and transport failures
become ``ToolError``s whose messages are safe to show the model.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Self

from mcp.shared.exceptions import MCPError
from mcp.types import REQUEST_TIMEOUT
from mcp.types import Tool as McpToolInfo

from tributary_agent_runner.tools.idempotency import current_call_key
from tributary_shared.runtime.retry import retry_forever
from tributary_shared.runtime.settings import load_settings

from .mcp_config import McpHttpServer, McpSettings, McpStdioServer
from .mcp_connection import McpConnection, McpUnavailable, clip
from .mcp_results import result_text
from .registry import JsonArguments, Tool, ToolError, ToolRegistry, ToolTimedOut

log = logging.getLogger(__name__)

#: OpenAI function names: ^[a-zA-Z0-9_-]{1,64}$
MAX_TOOL_NAME = 64
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
MAX_DESCRIPTION_CHARS = 1024
_MAX_ERROR_CHARS = 2000
#: Our own limit fires only if the SDK's (the server's ``timeout_s``) did not.
_TIMEOUT_GRACE_S = 5.0


def tool_name(server: str, tool: str) -> str:
    """``<server>__<tool>`` in the OpenAI function-name charset, at most 64 characters.

    Other characters become ``_``. A name that had to be changed or shortened
    gets a hash of the original appended, so that two MCP tools never end up
    with the same name (``a.b`` and ``a_b``, or two long names sharing a prefix).
    """
    raw = f"{server}__{tool}"
    name = _UNSAFE_NAME_CHARS.sub("_", raw)
    if name == raw and len(name) <= MAX_TOOL_NAME:
        return name
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return f"{name[: MAX_TOOL_NAME - len(digest) - 1]}_{digest}"


def parameters_schema(input_schema: Mapping[str, Any]) -> dict[str, Any]:
    """The MCP input schema as OpenAI function parameters.

    MCP requires an object schema; some servers omit ``type`` or, for tools
    without arguments, ``properties``, which OpenAI-compatible endpoints want.
    """
    schema = dict(input_schema)
    schema.setdefault("type", "object")
    if schema["type"] == "object":
        schema.setdefault("properties", {})
    return schema


def _description(server: str, info: McpToolInfo) -> str:
    text = (info.description or "").strip() or f"The {info.name} tool of the {server} MCP server."
    return text if len(text) <= MAX_DESCRIPTION_CHARS else text[: MAX_DESCRIPTION_CHARS - 1] + "…"


def _read_only(server: McpStdioServer | McpHttpServer, info: McpToolInfo) -> bool:
    hint = info.annotations.read_only_hint if info.annotations is not None else None
    return server.read_only or hint is True


def make_mcp_tool(
    connection: McpConnection, info: McpToolInfo, *, name: str, max_result_chars: int
) -> Tool[JsonArguments]:
    """Wrap one listed MCP tool; raises ValueError when its input schema is unusable."""
    server = connection.server
    read_only = _read_only(server, info)
    redact = connection.redact
    mcp_name = info.name

    async def run(args: JsonArguments) -> str:
        try:
            result = await connection.call_tool(
                mcp_name,
                args.root,
                timeout_s=server.timeout_s,
                retry_if_dropped=read_only,
                idempotency_key=current_call_key(),
            )
        except McpUnavailable as exc:
            raise ToolError(f"{name} failed: {exc}") from None
        except MCPError as exc:
            if exc.code == REQUEST_TIMEOUT:
                raise ToolTimedOut(f"{name} timed out after {server.timeout_s:g}s") from None
            raise ToolError(
                f"{name} failed: the MCP server answered error {exc.code}: "
                f"{redact(clip(exc.message))}"
            ) from None
        except Exception as exc:
            # A result that does not fit the protocol or the tool's output schema.
            log.warning("%s: unusable answer to %s (%s)", connection.label, mcp_name, type(exc))
            raise ToolError(
                f"{name} failed: the MCP server sent an unusable answer ({type(exc).__name__})"
            ) from None
        text = redact(result_text(result, max_result_chars))
        if result.is_error:
            raise ToolError(f"{name} failed: {clip(text, _MAX_ERROR_CHARS)}")
        return text

    return Tool(
        name=name,
        description=_description(server.name, info),
        args_model=JsonArguments,
        run=run,
        timeout_s=server.timeout_s + _TIMEOUT_GRACE_S,
        read_only=read_only,
        parameters=parameters_schema(info.input_schema),
    )


def build_tools(
    connection: McpConnection,
    listed: Iterable[McpToolInfo],
    *,
    max_result_chars: int,
    taken: Iterable[str] = (),
) -> list[Tool[Any]]:
    """The listed tools that pass the server's allow-list and have a usable schema."""
    server = connection.server
    listed = list(listed)
    allowed = set(server.tools) if server.tools is not None else None
    if allowed is not None:
        missing = allowed - {info.name for info in listed}
        if missing:
            log.warning(
                "%s does not offer allow-listed tools %s", connection.label, sorted(missing)
            )
    names = set(taken)
    tools: list[Tool[Any]] = []
    for info in listed:
        if allowed is not None and info.name not in allowed:
            continue
        name = tool_name(server.name, info.name)
        if name in names:
            log.warning(
                "%s: tool %r skipped, its name %s is taken", connection.label, info.name, name
            )
            continue
        try:
            tool = make_mcp_tool(connection, info, name=name, max_result_chars=max_result_chars)
        except ValueError as exc:
            log.warning("%s: tool %r skipped: %s", connection.label, info.name, exc)
            continue
        names.add(name)
        tools.append(tool)
    return tools


class McpToolset:
    """The configured MCP servers' tools, for the lifetime of the process.

    Use as ``async with McpToolset(settings, registry)`` or call :meth:`start`
    at startup and :meth:`aclose` at shutdown. Tools are registered into
    ``registry`` as they are listed (the registry is read per step, so tools
    of a server that answers late are offered from then on); without one they
    are only collected (:meth:`tools`). ``start`` may be called more than once.
    """

    def __init__(self, settings: McpSettings, registry: ToolRegistry | None = None) -> None:
        self._settings = settings
        self._registry = registry
        self._connections = [
            McpConnection(
                server,
                connect_timeout_s=settings.connect_timeout_s,
                reconnect_delay_s=settings.reconnect_delay_s,
            )
            for server in settings.servers
        ]
        self._tools: dict[str, Tool[Any]] = {}
        self._starting: asyncio.Task[None] | None = None
        self._retries: set[asyncio.Task[None]] = set()
        self._closed = False

    @classmethod
    def from_env(cls, registry: ToolRegistry | None = None) -> McpToolset:
        """Configured from ``TRIBUTARY_MCP_*``; exits naming the variable if it is invalid."""
        return cls(load_settings(McpSettings), registry)

    def tools(self) -> list[Tool[Any]]:
        """The MCP tools offered so far (more may come as unreachable servers answer)."""
        return list(self._tools.values())

    async def start(self) -> list[Tool[Any]]:
        """Connect to every server and register their tools; never fails for a server."""
        if self._closed:
            raise RuntimeError("the MCP toolset is closed")
        if self._starting is None:
            self._starting = asyncio.create_task(self._start_all(), name="mcp-start")
        await asyncio.shield(self._starting)
        return self.tools()

    async def aclose(self) -> None:
        """Stop background retries and close every session."""
        self._closed = True
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
        pending = [*self._retries, *([self._starting] if self._starting else [])]
        for task in self._retries:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        await asyncio.gather(*(connection.aclose() for connection in self._connections))

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _start_all(self) -> None:
        reached = await asyncio.gather(*(self._add_server(c) for c in self._connections))
        for connection, ok in zip(self._connections, reached, strict=True):
            if not ok:
                task = asyncio.create_task(
                    self._retry(connection), name=f"mcp-retry-{connection.server.name}"
                )
                self._retries.add(task)
                task.add_done_callback(self._retries.discard)

    async def _add_server(self, connection: McpConnection) -> bool:
        """List one server's tools and offer them; False when it could not be reached."""
        try:
            listed = await connection.list_tools()
        except McpUnavailable as exc:
            log.warning("%s; its tools are not offered until it answers", exc)
            return False
        except Exception as exc:
            # A malformed listing must not stop the agent-runner; the type is secret-free.
            log.warning(
                "%s sent an unusable tool list (%s); its tools are not offered until it "
                "sends a usable one",
                connection.label,
                type(exc).__name__,
            )
            return False
        taken = set(self._tools) | set(self._registry.names() if self._registry else ())
        tools = build_tools(
            connection,
            listed,
            max_result_chars=self._settings.max_result_chars,
            taken=taken,
        )
        for tool in tools:
            if self._registry is not None:
                self._registry.register(tool)
            self._tools[tool.name] = tool
        log.info(
            "%s offers %d tools: %s",
            connection.label,
            len(tools),
            ", ".join(t.name for t in tools) or "none",
        )
        return True

    async def _retry(self, connection: McpConnection) -> None:
        """Try a server that failed at start again, with growing pauses, until it answers."""

        async def add_or_raise() -> None:
            if not await self._add_server(connection):  # which logged the reason
                raise McpUnavailable("no usable tool list yet")

        await asyncio.sleep(self._settings.retry_interval_s)
        await retry_forever(
            add_or_raise,
            what=f"{connection.label}: listing its tools",
            first_wait_s=self._settings.retry_interval_s,
            max_wait_s=self._settings.retry_max_interval_s,
            logger=log,
        )
