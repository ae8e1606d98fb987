"""One try at a callback: a signed ``POST`` to a checked, pinned address.

The URL is a client's, so the same rules as ``fetch_url`` keep it out of the cluster
(``runtime.destinations``): the host is resolved once, every answer must pass the
address policy, the connection goes to a checked address (the ``Host`` header and
the TLS server name carry the name). Redirects are not followed (a 3xx is an
answer); the answer's body is read only up to a small bound; one deadline covers
the whole try.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from functools import cache

import httpx

from tributary_shared.core.callbacks import DELIVERY_ID_HEADER, SIGNATURE_HEADER, signature_header
from tributary_shared.core.netguard import AddressPolicy, public_only
from tributary_shared.runtime.destinations import (
    DestinationRefused,
    Resolver,
    checked_destination,
    system_resolver,
)

__all__ = ["CallbackSender", "SendResult"]

USER_AGENT = "Tributary-Callbacks/0.1"
_MAX_ANSWER_BYTES = 64 * 1024
# A name may resolve to many addresses; try a few before giving up on connecting.
_MAX_CONNECT_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one try came to: the receiver's status, or why there was none."""

    status: int | None
    error: str | None
    duration_ms: int
    refused: bool = False
    """The destination may not be reached (the address policy, or an invalid URL):
    trying again would not help."""


@cache
def _default_ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


class CallbackSender:
    def __init__(
        self,
        *,
        timeout_s: float,
        policy: AddressPolicy = public_only,
        resolver: Resolver = system_resolver,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._timeout_s = timeout_s
        self._policy = policy
        self._resolver = resolver
        self._transport = transport

    async def send(
        self, url: str, body: bytes, *, secret: bytes, delivery_id: str, now: float | None = None
    ) -> SendResult:
        started = time.monotonic()
        timestamp = int(time.time() if now is None else now)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: signature_header(secret, timestamp, body),
            DELIVERY_ID_HEADER: delivery_id,
        }
        status: int | None = None
        error: str | None = None
        refused = False
        try:
            async with asyncio.timeout(self._timeout_s), self._client() as client:
                status = await self._post(client, httpx.URL(url), body, headers)
        except DestinationRefused as exc:
            error, refused = str(exc), exc.permanent
        except TimeoutError:
            error = f"no answer within {self._timeout_s:g}s"
        except httpx.InvalidURL:
            error, refused = "refused: not a valid URL", True
        except httpx.TransportError as exc:
            # The class name says what went wrong without echoing internal addresses.
            error = f"request failed ({type(exc).__name__})"
        return SendResult(status, error, int((time.monotonic() - started) * 1000), refused)

    def _client(self) -> httpx.AsyncClient:
        if self._transport is not None:
            return httpx.AsyncClient(transport=self._transport, follow_redirects=False)
        return httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,  # a proxy from the environment would resolve names itself
            verify=_default_ssl_context(),
            timeout=httpx.Timeout(self._timeout_s),
            # No reuse: a pooled connection is keyed by IP, and reusing one verified
            # for another name would skip that name's TLS check.
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    async def _post(
        self, client: httpx.AsyncClient, url: httpx.URL, body: bytes, headers: dict[str, str]
    ) -> int:
        port = url.port if url.port is not None else (443 if url.scheme == "https" else 80)
        target = await checked_destination(
            url.raw_host, port, policy=self._policy, resolver=self._resolver
        )
        extensions: dict[str, str] = {}
        if target.host_name is not None and url.scheme == "https":
            extensions["sni_hostname"] = target.host_name
        last: httpx.ConnectError | None = None
        for ip in target.addresses[:_MAX_CONNECT_ATTEMPTS]:
            request = client.build_request(
                "POST",
                url.copy_with(host=str(ip)),
                content=body,
                headers={**headers, "Host": url.netloc.decode("ascii")},
                extensions=extensions,
            )
            try:
                response = await client.send(request, stream=True)
            except httpx.ConnectError as exc:
                last = exc
                continue
            try:
                await _drain(response)
            finally:
                await response.aclose()
            return response.status_code
        assert last is not None
        raise last


async def _drain(response: httpx.Response) -> None:
    """Read a little of the answer (receivers may expect it read), never all of a large one."""
    if response.is_stream_consumed:  # an answer read already (a test transport's)
        return
    read = 0
    async for chunk in response.aiter_raw():  # raw: a compressed answer is not inflated
        read += len(chunk)
        if read >= _MAX_ANSWER_BYTES:
            return
