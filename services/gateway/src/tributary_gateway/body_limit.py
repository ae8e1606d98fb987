"""Refuse a request body over the configured size with ``413``, before anything parses it.

A declared ``Content-Length`` over the limit is refused without reading a byte. A
body without one (chunked) is read up to the limit and refused as soon as it goes
past; one within it is handed to the app as a single message. Counting in the
middleware, rather than in a handler, is what keeps a client from making the
gateway buffer and parse an unbounded body.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimit"]


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > self.max_bytes
            except ValueError:
                too_large = False  # the server refuses a malformed length itself
            if too_large:
                await self._refuse(send)
                return
        elif b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body at all (a GET, a stream)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay(None, receive, message), send)
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await self._refuse(send)
                return
            if not message.get("more_body", False):
                break
        whole: Message = {"type": "http.request", "body": bytes(body), "more_body": False}
        await self.app(scope, _replay(whole, receive, None), send)

    async def _refuse(self, send: Send) -> None:
        detail = {"detail": f"the request body is larger than {self.max_bytes} bytes"}
        payload = json.dumps(detail).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _replay(first: Message | None, receive: Receive, pending: Message | None) -> Receive:
    """``receive`` that hands out the buffered body (or a disconnect) once, then delegates."""
    queued = [m for m in (first, pending) if m is not None]

    async def replay() -> Message:
        if queued:
            return queued.pop(0)
        return await receive()

    return replay
