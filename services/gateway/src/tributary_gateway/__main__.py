"""Entry point: ``python -m tributary_gateway``: the public API and, on a port of its own,
the metrics server, in one process and one event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn

from tributary_gateway.app import create_app, metrics_app
from tributary_gateway.settings import GatewaySettings
from tributary_shared.runtime.settings import HttpSettings, load_settings


class _FollowingServer(uvicorn.Server):
    """A server that leaves the signals to the API's server and stops after it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve() -> None:
    http = load_settings(HttpSettings)
    gateway = load_settings(GatewaySettings)
    api = uvicorn.Server(
        uvicorn.Config(
            create_app(),
            host=http.http_host,
            port=http.http_port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=5,
        )
    )
    metrics = _FollowingServer(
        uvicorn.Config(
            metrics_app(),
            host=http.http_host,
            port=gateway.metrics_port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    metrics_serving = asyncio.create_task(metrics.serve())
    try:
        await api.serve()
    finally:
        metrics.should_exit = True
        await metrics_serving


def main() -> None:
    asyncio.run(serve())


if __name__ == "__main__":
    main()
