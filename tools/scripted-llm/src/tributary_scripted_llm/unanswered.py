"""Closing a request's connection without answering it, as a server closing an idle
kept-alive connection does just as the client sends on it.

ASGI has no message for "close without a response", and uvicorn answers ``500`` for
an app that raises before responding. So the app uvicorn serves is wrapped
(``closable``): each HTTP request's scope carries, under ``CLOSE_CONNECTION``, a
function that closes its connection at once. uvicorn's ``send`` is a method of the
request's cycle, which holds the connection's transport; ``transport.close()`` sends
a FIN with no byte of a response before it, so the client reads end-of-file where the
status line should be (httpcore: "Server disconnected without sending a response.").
Served otherwise (an in-process transport) the scope has no such function, and the
app raises ``ConnectionClosedUnanswered`` for the transport to stand in for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

CLOSE_CONNECTION = "tributary.close_connection"
"""The scope key of the function that closes the request's connection unanswered."""

CloseConnection = Callable[[], None]


class ConnectionClosedUnanswered(Exception):
    """Raised for a response scripted to close the connection without answering
    (``close_without_answer``) when the server cannot close it itself: the in-process
    transport turns it into the error a closed connection gives."""

    def __init__(self) -> None:
        super().__init__("the scripted response closes the connection without answering")


def closable(app: ASGIApp) -> ASGIApp:
    """``app`` with ``CLOSE_CONNECTION`` in each HTTP request's scope, served by uvicorn."""

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        close = _closer_of(send) if scope["type"] == "http" else None
        if close is not None:
            scope = {**scope, CLOSE_CONNECTION: close}
        await app(scope, receive, send)

    return serve


def _closer_of(send: Send) -> CloseConnection | None:
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    return transport.close if isinstance(transport, asyncio.BaseTransport) else None
