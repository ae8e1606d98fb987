"""The scripted LLM server in-process: the real SDK over an ASGI transport, no socket.

The app answers for every host name, so several deployments (``http://<host>/v1``)
can share it; a host taken down refuses connections, as a stopped endpoint does,
and the transport counts the connection attempts each host received. A streamed
answer scripted to break (``stream_break_after``) reaches the client as a real
dropped connection does: its first chunks, then the transport's error; a response
scripted to close the connection unanswered (``close_without_answer``) raises what
httpx raises for a connection closed before the status line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx2
from pydantic import SecretStr

from tributary_scripted_llm import (
    ConnectionClosedUnanswered,
    RecordedRequest,
    Rule,
    StreamBroken,
    create_app,
)
from tributary_shared.runtime.llm import LLMClient
from tributary_shared.runtime.settings import LLMSettings

PLAN_FORMAT = "tributary_plan"
HOST = "scripted-llm"
"""The host of ``TRIBUTARY_LLM_BASE_URL`` in ``ScriptedEndpoint.settings``."""


class ScriptedEndpoint:
    """The scripted LLM server as an in-process ASGI app, with what it recorded."""

    stream = False
    """Whether its clients stream (``TRIBUTARY_LLM_STREAM``) unless told otherwise; a
    suite sets it for all its endpoints to run its tests over streamed answers."""
    opened: list[ScriptedEndpoint] | None = None
    """When a list, every endpoint made is added to it (to check what they were asked)."""

    def __init__(self, *rules: Rule) -> None:
        if ScriptedEndpoint.opened is not None:
            ScriptedEndpoint.opened.append(self)
        self.app = create_app(rules=rules)
        self.hosts = _Hosts(httpx2.ASGITransport(app=self.app))
        self.http = httpx2.AsyncClient(transport=self.hosts, base_url="http://scripted-llm")

    @property
    def requests(self) -> list[RecordedRequest]:
        return list(self.app.state.scripted.recorded)

    @property
    def models(self) -> list[str]:
        return [request.model for request in self.requests]

    def settings(self, **overrides: object) -> LLMSettings:
        return LLMSettings.model_validate(
            {
                "TRIBUTARY_LLM_BASE_URL": f"http://{HOST}/v1",
                "TRIBUTARY_LLM_API_KEY": SecretStr("test-key"),
                "TRIBUTARY_LLM_MAX_ATTEMPTS": 3,
                "TRIBUTARY_LLM_MAX_BACKOFF_S": 0.01,
                "TRIBUTARY_LLM_STREAM": self.stream,
                **overrides,
            }
        )

    def client(self, **overrides: object) -> LLMClient:
        return LLMClient(self.settings(**overrides), http_client=self.http)

    def take_down(self, host: str = HOST) -> None:
        """``host`` refuses connections from now on."""
        self.hosts.down.add(host)

    def bring_up(self, host: str = HOST) -> None:
        self.hosts.down.discard(host)

    def attempts_at(self, host: str = HOST) -> int:
        """Requests sent to ``host``, refused ones included."""
        return self.hosts.attempts[host]

    def add_rule(self, rule: Rule) -> None:
        self.app.state.scripted.rules.add(rule)

    # -- what the endpoint saw, by caller ----------------------------------------------

    def planner_calls(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.response_format == PLAN_FORMAT]

    def agent_calls(self, step_title: str | None = None) -> list[RecordedRequest]:
        calls = [r for r in self.requests if r.tools]
        if step_title is None:
            return calls
        return [r for r in calls if any(_says(m, f"Your step: {step_title}\n") for m in r.messages)]

    def synthesis_calls(self) -> list[RecordedRequest]:
        return [r for r in self.requests if not r.tools and r.response_format is None]

    async def aclose(self) -> None:
        await self.http.aclose()


class _Hosts(httpx2.AsyncBaseTransport):
    """The scripted app behind every host name; hosts taken down refuse connections."""

    def __init__(self, app: httpx2.AsyncBaseTransport) -> None:
        self._app = app
        self.down: set[str] = set()
        self.attempts: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        host = request.url.host
        self.attempts[host] += 1
        if host in self.down:
            raise httpx2.ConnectError(f"connection to {host} refused", request=request)
        try:
            return await self._app.handle_async_request(request)
        except ConnectionClosedUnanswered:
            # What httpx raises when the server closes the connection before answering.
            raise httpx2.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            ) from None
        except StreamBroken as broken:
            # The in-process transport buffers the body; the app's break comes out here.
            headers = {"content-type": "text/event-stream"}
            return httpx2.Response(200, headers=headers, stream=_Cut(broken.sent, request))


class _Cut(httpx2.AsyncByteStream):
    """A response body whose connection drops after ``sent``."""

    def __init__(self, sent: bytes, request: httpx2.Request) -> None:
        self._sent = sent
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._sent
        raise httpx2.RemoteProtocolError(
            "peer closed connection without sending complete message body", request=self._request
        )


def deployment(id: str, host: str, **fields: object) -> dict[str, object]:
    """One entry of ``TRIBUTARY_LLM_DEPLOYMENTS`` served by ``host`` (key inherited)."""
    return {"id": id, "base_url": f"http://{host}/v1", **fields}


def _says(message: dict[str, Any], text: str) -> bool:
    content = message.get("content")
    return isinstance(content, str) and text in content


def rule(*responses: dict[str, Any], **match: Any) -> Rule:
    """A rule answering requests that match ``match`` with ``responses`` in turn."""
    return Rule.model_validate({"match": match, "responses": list(responses)})
