"""The web inspector: the built front end (``ui/``) served as static files under ``/ui``.

Same origin as the API, so the browser calls ``/v1`` with the signed-in key and no
CORS. The files carry no secrets and need no API key; every request they make to
``/v1`` is authenticated as usual. The content-security policy allows scripts,
styles and connections from this origin only, and no inline script at all.

``make setup`` (and the gateway image's node stage) builds ``ui/`` into
``INSPECTOR_BUILD``; a gateway without the build answers ``/ui`` with a page that
says how to build it rather than a bare 404.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONTENT_SECURITY_POLICY", "INSPECTOR_BUILD", "INSPECTOR_PATH", "mount_inspector"]

INSPECTOR_PATH = "/ui"
INSPECTOR_BUILD = Path(__file__).resolve().parent / "inspector_build"
"""Where the front end's build lands (ignored by git; shipped in the wheel)."""

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    # Small files, revalidated by their ETag: a new build shows up on the next load.
    (b"cache-control", b"no-cache"),
]

_NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tributary inspector not built</title></head>
<body><h1>The inspector is not built</h1>
<p>This gateway has no build of the web inspector. From the repository, run
<code>make setup</code> (it runs <code>npm ci</code> and the build in <code>ui/</code>), then
restart the gateway. The API under <code>/v1</code> works without it.</p></body></html>
"""


class _SecurityHeaders:
    """Adds the inspector's response headers to whatever the wrapped app answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _not_built(scope: Scope, receive: Receive, send: Send) -> None:
    await HTMLResponse(_NOT_BUILT, status_code=503)(scope, receive, send)


def mount_inspector(app: FastAPI, *, build: Path = INSPECTOR_BUILD) -> None:
    """Serve ``build`` under ``/ui`` (``/ui`` redirects to ``/ui/``), or say it is missing."""
    served: ASGIApp
    if (build / "index.html").is_file():
        served = StaticFiles(directory=build, html=True)
    else:
        served = _not_built
    app.mount(INSPECTOR_PATH, _SecurityHeaders(served), name="inspector")
