"""Browser access from another origin, in a real browser against the live stack.

A page served from an origin the gateway lists in ``TRIBUTARY_GATEWAY_CORS_ORIGINS``
asks for a stream token with its key (a cross-origin ``fetch`` with an
``Authorization`` header: a preflight first) and follows the workflow with an
``EventSource`` on the token, to its last event. A page from any other origin is
refused both: its ``fetch`` fails, and so does an ``EventSource`` on a valid token,
since the gateway sends it no CORS headers.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.async_api import Browser

from tests.support.browser import chromium
from tests.support.client import GatewayClient
from tests.support.stack import RunningServices, free_port
from tributary_devstack.process import ServiceProcess

pytestmark = pytest.mark.integration

# The page's script: what a web developer writes to follow a workflow from a browser.
PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>elsewhere</title></head><body>
<script>
const TERMINAL = ["workflow.completed", "workflow.failed", "workflow.cancelled"];
const TYPES = ["workflow.requested", "plan.created", "step.dispatched", "step.started",
               "step.completed", "synthesis.started", ...TERMINAL];

window.streamToken = async (base, key, workflowId) => {
  try {
    const answer = await fetch(`${base}/v1/workflows/${workflowId}/stream-token`, {
      method: "POST", headers: { Authorization: `Bearer ${key}` } });
    return { status: answer.status, body: await answer.json() };
  } catch (error) {
    return { refused: String(error) };
  }
};

window.follow = (url) => new Promise((resolve) => {
  const seen = [];
  const source = new EventSource(url);
  for (const type of TYPES) {
    source.addEventListener(type, (event) => {
      seen.push(type);
      if (TERMINAL.includes(type)) { source.close(); resolve({ seen }); }
    });
  }
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) resolve({ seen, refused: true });
  };
});
</script></body></html>
"""


class _PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def _page_origin() -> Iterator[str]:
    """A web server of its own, so its pages have an origin of their own."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _PageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def origins() -> Iterator[tuple[str, str]]:
    """(allowed, other): two page origins, the gateway listing the first only."""
    with _page_origin() as allowed, _page_origin() as other:
        yield allowed, other


@pytest.fixture(scope="module")
async def cors_gateway(
    services: RunningServices, origins: tuple[str, str]
) -> AsyncIterator[ServiceProcess]:
    allowed, _ = origins
    proc: ServiceProcess = services.stack.start_service(
        "gateway",
        port=free_port(),
        env={**services.env, "TRIBUTARY_GATEWAY_CORS_ORIGINS": allowed},
        instance="e2e-gateway-cors",
    )
    try:
        await asyncio.to_thread(proc.wait_healthy, 60)
        yield proc
    finally:
        proc.terminate(grace=10)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


async def test_an_allowed_origin_follows_a_stream_and_another_is_refused(
    browser: Browser,
    cors_gateway: ServiceProcess,
    origins: tuple[str, str],
    gateway: GatewayClient,
    api_key: str,
    marker: str,
) -> None:
    allowed, other = origins
    base = f"http://127.0.0.1:{cors_gateway.port}"
    context = await browser.new_context()
    try:
        page = await context.new_page()

        await page.goto(f"{allowed}/")
        workflow_id = await gateway.start(f"What is 12 * 12? {marker}")
        issued = await page.evaluate(
            "([base, key, id]) => window.streamToken(base, key, id)", [base, api_key, workflow_id]
        )
        assert issued.get("status") == 201, issued
        followed = await asyncio.wait_for(
            page.evaluate("(url) => window.follow(url)", base + issued["body"]["stream_url"]),
            timeout=120,
        )
        assert followed["seen"][0] == "workflow.requested", followed
        assert followed["seen"][-1] == "workflow.completed", followed
        assert "refused" not in followed

        # Another origin: the browser keeps the key's fetch and the token's stream out.
        await page.goto(f"{other}/")
        refused = await page.evaluate(
            "([base, key, id]) => window.streamToken(base, key, id)", [base, api_key, workflow_id]
        )
        assert "refused" in refused, refused
        token = await gateway.http.post(f"/v1/workflows/{workflow_id}/stream-token")
        assert token.status_code == 201
        stream = await asyncio.wait_for(
            page.evaluate("(url) => window.follow(url)", base + token.json()["stream_url"]),
            timeout=60,
        )
        assert stream == {"seen": [], "refused": True}
    finally:
        await context.close()
