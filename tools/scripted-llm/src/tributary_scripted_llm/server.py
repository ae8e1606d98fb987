"""Run the scripted LLM on a real socket in a background thread, for tests and demos.

The server gets its own thread and event loop so that a test may block on the sync
admin client, or drive its own event loop hard, without stalling the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Self

import uvicorn
from fastapi import FastAPI

from .admin_client import ScriptedLLMAdmin
from .app import create_app
from .models import Rule, ServerConfig
from .state import ServerState
from .unanswered import closable


class ScriptedLLMServer:
    """An OpenAI-compatible scripted LLM listening on ``host:port`` (0 = a free port).

    Use as ``with ScriptedLLMServer() as llm:`` or ``async with ScriptedLLMServer() as
    llm:``; point clients at ``llm.base_url`` and script answers with ``llm.admin``.

    ``stop()`` then ``start()`` is an outage of the endpoint: meanwhile connections are
    refused, and it comes back on the same port with its rules and recorded requests.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency_ms: int = 0,
        rules: Iterable[Rule] = (),
        config: ServerConfig | None = None,
        log_level: str = "warning",
        startup_timeout: float = 10.0,
    ) -> None:
        self._host = host
        self._requested_port = port
        base = config or ServerConfig()
        self._config = base.model_copy(update={"latency_ms": latency_ms}) if latency_ms else base
        self._rules = list(rules)
        self._log_level = log_level
        self._startup_timeout = startup_timeout
        self._socket: socket.socket | None = None
        self._port: int | None = None
        self._server: uvicorn.Server | None = None
        self._app: FastAPI | None = None
        self._state: ServerState | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._admin: ScriptedLLMAdmin | None = None

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The bound port (known once started)."""
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:8199``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """OpenAI base URL, e.g. ``http://127.0.0.1:8199/v1``."""
        return f"{self.url}/v1"

    @property
    def admin(self) -> ScriptedLLMAdmin:
        """An admin client for this server, closed when the server stops."""
        if self._admin is None:
            self._admin = ScriptedLLMAdmin(self.base_url)
        return self._admin

    def start(self) -> Self:
        """Bind, start serving in a background thread, and wait until ready."""
        if self._thread is not None:
            raise RuntimeError("the server is already started")
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        # An explicit IPPROTO_TCP matters: asyncio only turns Nagle off (TCP_NODELAY) on
        # accepted sockets whose proto says TCP, and with Nagle on every response costs
        # a ~40 ms delayed-ACK round trip.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # Started again after a stop: back on the port it had.
            sock.bind((self._host, self._port or self._requested_port))
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self._port = int(sock.getsockname()[1])

        if self._app is None:
            self._app = create_app(self._config, self._rules)
        self._state = self._app.state.scripted
        self._state.reopen()
        config = uvicorn.Config(
            closable(self._app),
            log_level=self._log_level,
            # Leave the host process's logging setup alone.
            log_config=None,
            access_log=False,
            lifespan="off",
            ws="none",
            # Pending requests are released on stop; this only bounds a stuck client.
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="scripted-llm", daemon=True)
        self._thread.start()

        deadline = time.monotonic() + self._startup_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                error = self._error
                self.stop()
                raise RuntimeError("the scripted LLM server failed to start") from error
            time.sleep(0.005)
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            # Kept for start() to report, instead of escaping as an unhandled thread error.
            self._error = exc

    async def _serve(self) -> None:
        assert self._server is not None
        assert self._socket is not None
        self._loop = asyncio.get_running_loop()
        await self._server.serve(sockets=[self._socket])

    def stop(self) -> None:
        """Release pending requests, shut down, and wait for the thread to end."""
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        loop, state = self._loop, self._state
        if loop is not None and state is not None:
            # The loop may finish between the check and the call; then there is nothing
            # left to release.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(state.begin_closing)
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()  # normally closed by uvicorn already; this covers failures
        self._socket = None
        self._thread = None
        self._server = None
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        # Starting blocks briefly on the socket and thread start-up; keep the caller's
        # event loop responsive meanwhile.
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)
