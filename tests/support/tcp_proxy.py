"""A TCP proxy whose open connections a test can cut, as a network drop would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class CuttableProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target``; ``cut()`` resets every open connection.

    ``requests`` keeps every chunk the clients sent (request lines and
    headers), so a test can see what a reconnection asked for.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.requests: list[bytes] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()  # mid-body: the peer never gets the rest of the stream
        self._writers.clear()

    async def _serve(
        self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        upstream_reader, upstream = await asyncio.open_connection(*self.target)
        self._writers.update((client, upstream))
        await asyncio.gather(
            self._pipe(client_reader, upstream, log=True),
            self._pipe(upstream_reader, client, log=False),
        )
        self._writers.difference_update((client, upstream))

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, log: bool
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                if log:
                    self.requests.append(chunk)
                writer.write(chunk)
                await writer.drain()
        except OSError:  # the connection was cut (reset) under it
            pass
        finally:
            writer.close()


@asynccontextmanager
async def cuttable_proxy(url: str) -> AsyncIterator[CuttableProxy]:
    host, _, port = url.removeprefix("http://").partition(":")
    proxy = CuttableProxy(host, int(port))
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
