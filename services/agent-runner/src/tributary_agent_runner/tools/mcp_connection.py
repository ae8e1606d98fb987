"""One MCP server's session, kept open for the process lifetime and reopened when it drops.

The SDK's transports run inside anyio task groups, which must be entered and
left by the same task, and a failing transport cancels the task that entered
it. So each session lives in an *owner task* of its own: the owner opens the
``mcp.Client``, hands it over and waits until it is told to close or the
transport fails. Tool calls from any task go through the client; a session
that dropped is noticed either by its owner (the transport failed) or by a
call (``CONNECTION_CLOSED``) and is replaced on the next call.

Failures are reported as :class:`McpUnavailable` with secret-free messages:
exception text from the transports can quote URLs, so only exception types,
HTTP statuses and (redacted) MCP error messages are used.
"""

from __future__ import annotations

import asyncio
import logging
import math
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CONNECTION_CLOSED, INVALID_REQUEST, CallToolResult, Implementation
from mcp.types import Tool as McpToolInfo

from .idempotency import MCP_META_KEY
from .mcp_config import McpHttpServer, McpStdioServer, Redactor

log = logging.getLogger(__name__)

CLIENT_INFO = Implementation(name="tributary-agent-runner", version="0.1.0")
#: After a failed reconnect, calls fail fast for this long instead of each
#: waiting out a connect timeout against a server that is down.
DEFAULT_RECONNECT_DELAY_S = 5.0
#: How long a closing session may take (a stdio server gets 2 s to exit, then signals).
_CLOSE_TIMEOUT_S = 10.0
#: Guard against a server whose tools/list pagination never ends.
_MAX_LIST_PAGES = 100
_MAX_MESSAGE_CHARS = 500
#: The streamable HTTP transport may hold a response stream open while a tool runs;
#: a read timeout shorter than a tool's ``timeout_s`` would break the session.
_HTTP_READ_TIMEOUT_S = 300.0


class McpUnavailable(Exception):
    """The server could not be reached, or the session was lost. The message is secret-free."""


def clip(text: str, limit: int = _MAX_MESSAGE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside the exception groups anyio wraps transport failures in."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def describe_failure(exc: BaseException, redact: Redactor) -> str:
    """A short, secret-free reason for a connection failure."""
    leaf = _leaf(exc)
    if isinstance(leaf, MCPError):
        return f"MCP error {leaf.code}: {redact(clip(leaf.message))}"
    if isinstance(leaf, httpx2.HTTPStatusError):
        return f"HTTP {leaf.response.status_code}"
    if isinstance(leaf, httpx2.TimeoutException):
        return "the HTTP request timed out"
    if isinstance(leaf, httpx2.TransportError):
        return f"connection failed ({type(leaf).__name__})"
    if isinstance(leaf, OSError):
        # str(OSError) names the file; strerror does not.
        return f"{type(leaf).__name__}: {leaf.strerror or 'operating system error'}"
    return type(leaf).__name__


@dataclass(frozen=True, eq=False)
class _Session:
    """An open client and the event that tells its owner task to close it."""

    client: Client
    stop: asyncio.Event


def _session_expired(exc: MCPError) -> bool:
    """Whether a streamable HTTP server no longer knows our session (it restarted, say).

    It answers HTTP 404, which the SDK reports as INVALID_REQUEST ("Session
    terminated", or the server's own "Session not found"); the spec's remedy
    is a new session. The request was refused, not run.
    """
    return exc.code == INVALID_REQUEST and "session" in exc.message.lower()


def _consume(future: asyncio.Future[Any]) -> None:
    """Mark a future's outcome as seen, so asyncio does not log it as never retrieved."""
    if future.done() and not future.cancelled():
        future.exception()


class McpConnection:
    """The session with one configured MCP server, opened on first use and after a drop."""

    def __init__(
        self,
        server: McpStdioServer | McpHttpServer,
        *,
        connect_timeout_s: float = 30.0,
        reconnect_delay_s: float = DEFAULT_RECONNECT_DELAY_S,
    ) -> None:
        self.server = server
        self.redact = Redactor.for_server(server)
        self.label = f"MCP server {server.name!r} ({server.target()})"
        self._connect_timeout_s = connect_timeout_s
        self._reconnect_delay_s = reconnect_delay_s
        self._current: _Session | None = None
        self._connecting: asyncio.Task[_Session] | None = None
        self._owners: dict[asyncio.Task[None], asyncio.Event] = {}
        self._retry_at = 0.0
        self._closed = False

    @property
    def connected(self) -> bool:
        return self._current is not None

    async def list_tools(self) -> list[McpToolInfo]:
        """All the server's tools (every page), connecting first if needed."""
        session = await self._session(fail_fast=False)
        tools: list[McpToolInfo] = []
        cursor: str | None = None
        try:
            for _ in range(_MAX_LIST_PAGES):
                page = await session.client.list_tools(cursor=cursor)
                tools.extend(page.tools)
                cursor = page.next_cursor
                if cursor is None:
                    break
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED or _session_expired(exc):
                self._drop(session)
            raise McpUnavailable(
                f"{self.label} could not list its tools: {describe_failure(exc, self.redact)}"
            ) from None
        return tools

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        timeout_s: float,
        retry_if_dropped: bool,
        idempotency_key: str | None = None,
    ) -> CallToolResult:
        """Call a tool; ``MCPError`` from the server (including timeouts) propagates.

        A session found closed or expired is replaced. The call is sent again
        on the new session when the server refused it unrun (expired
        session), or when ``retry_if_dropped`` (the tool is read-only): after
        a dropped connection, whether the request ran is unknown, and a tool
        with side effects must not run twice.
        """
        # A server that deduplicates on the key acts once however often it is sent.
        meta: Any = {MCP_META_KEY: idempotency_key} if idempotency_key else None
        session = await self._session(fail_fast=True)
        try:
            return await session.client.call_tool(
                name, arguments, read_timeout_seconds=timeout_s, meta=meta
            )
        except MCPError as exc:
            if _session_expired(exc):
                resend = True
            elif exc.code == CONNECTION_CLOSED:
                resend = retry_if_dropped
            else:
                raise
            self._drop(session)
            if not resend:
                raise McpUnavailable(
                    f"the connection to {self.label} was lost during the call; "
                    "it is reopened on the next call"
                ) from None
        log.info("%s: new session, sending the %s call again", self.label, name)
        session = await self._session(fail_fast=False)
        try:
            return await session.client.call_tool(
                name, arguments, read_timeout_seconds=timeout_s, meta=meta
            )
        except MCPError as exc:
            if exc.code != CONNECTION_CLOSED and not _session_expired(exc):
                raise
            self._drop(session)
            raise McpUnavailable(f"the connection to {self.label} was lost twice") from None

    async def aclose(self) -> None:
        """Close the session (stopping a stdio server); the connection cannot be used again."""
        self._closed = True
        self._current = None
        if self._connecting is not None:
            self._connecting.cancel()
            await asyncio.wait([self._connecting])
        owners = list(self._owners)
        for stop in self._owners.values():
            stop.set()
        if not owners:
            return
        _, late = await asyncio.wait(owners, timeout=_CLOSE_TIMEOUT_S)
        for task in late:
            log.warning("%s did not close in time; cancelling its session", self.label)
            task.cancel()
        if late:
            await asyncio.wait(late)

    # --- session management ---------------------------------------------------

    async def _session(self, *, fail_fast: bool) -> _Session:
        """The open session, or one opened now (concurrent callers share one attempt)."""
        if self._closed:
            raise McpUnavailable(f"{self.label} is shut down")
        if self._current is not None:
            return self._current
        if self._connecting is None:
            wait_s = self._retry_at - asyncio.get_running_loop().time()
            if fail_fast and wait_s > 0:
                raise McpUnavailable(
                    f"{self.label} is unavailable; it is tried again in {math.ceil(wait_s)}s"
                )
            self._connecting = asyncio.create_task(self._open(), name=f"mcp-connect-{self.label}")
            self._connecting.add_done_callback(_consume)
        # Shielded: a caller that gives up (its tool timed out) leaves the attempt running
        # for the next caller instead of leaving a half-open session behind.
        return await asyncio.shield(self._connecting)

    async def _open(self) -> _Session:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[Client] = loop.create_future()
        stop = asyncio.Event()
        owner = asyncio.create_task(self._own(ready, stop), name=f"mcp-session-{self.label}")
        self._owners[owner] = stop
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                client = await asyncio.shield(ready)
        except BaseException as exc:
            if not owner.done():
                owner.cancel()
            await asyncio.wait([owner])
            _consume(ready)
            self._retry_at = loop.time() + self._reconnect_delay_s
            if isinstance(exc, TimeoutError):
                raise McpUnavailable(
                    f"{self.label} did not answer within {self._connect_timeout_s:g}s"
                ) from None
            raise
        finally:
            self._connecting = None
        self._current = _Session(client, stop)
        log.info("%s connected", self.label)
        return self._current

    async def _own(self, ready: asyncio.Future[Client], stop: asyncio.Event) -> None:
        """Hold one session open until ``stop`` is set or its transport fails."""
        try:
            async with AsyncExitStack() as stack:
                client = await self._enter_client(stack)
                if ready.done():  # the opener gave up meanwhile
                    return
                ready.set_result(client)
                await stop.wait()
        except Exception as exc:
            if not ready.done():
                reason = describe_failure(exc, self.redact)
                ready.set_exception(McpUnavailable(f"could not connect to {self.label}: {reason}"))
            elif not stop.is_set():
                log.warning(
                    "%s: session dropped (%s); it is reopened on the next call",
                    self.label,
                    describe_failure(exc, self.redact),
                )
        finally:
            if self._current is not None and self._current.stop is stop:
                self._current = None
            task = asyncio.current_task()
            if task is not None:
                self._owners.pop(task, None)

    async def _enter_client(self, stack: AsyncExitStack) -> Client:
        server = self.server
        client: Client
        if isinstance(server, McpStdioServer):
            params = StdioServerParameters(
                command=server.command,
                args=list(server.args),
                env={key: value.get_secret_value() for key, value in server.env.items()},
                cwd=server.cwd,
            )
            client = Client(
                params,
                cache=None,
                client_info=CLIENT_INFO,
                read_timeout_seconds=self._connect_timeout_s,
            )
        else:
            http = await stack.enter_async_context(
                httpx2.AsyncClient(
                    headers={
                        key: value.get_secret_value() for key, value in server.headers.items()
                    },
                    timeout=httpx2.Timeout(
                        self._connect_timeout_s,
                        read=max(_HTTP_READ_TIMEOUT_S, server.timeout_s + 30.0),
                    ),
                )
            )
            transport = streamable_http_client(server.url.get_secret_value(), http_client=http)
            client = Client(
                transport,
                cache=None,
                client_info=CLIENT_INFO,
                read_timeout_seconds=self._connect_timeout_s,
            )
        return await stack.enter_async_context(client)

    def _drop(self, session: _Session) -> None:
        """Forget a session found closed and let its owner task clean it up."""
        if self._current is session:
            self._current = None
            log.warning("%s: session closed; it is reopened on the next call", self.label)
        session.stop.set()
