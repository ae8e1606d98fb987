"""The ``fetch_url`` built-in tool: read a public web page as text, safely.

The URL comes from a model, which may have read it in a hostile page, so the
tool must not become a way into the cluster (SSRF). Every hop is checked:

1. parse the URL; only ``http``/``https``, no credentials, a valid port;
2. normalise the host like a libc/browser would (``127.1``, ``0x7f.1`` ...);
3. resolve names once and refuse if *any* answer is refused by the policy;
4. connect to the checked address itself -- the request URL carries the IP,
   while the ``Host`` header and the TLS server name carry the original name
   -- so a second DNS answer (rebinding) cannot move the connection;
5. follow redirects by hand, repeating 1-4 for each, at most ``max_redirects``.

The body is streamed and capped (:mod:`.fetch_body`), HTML becomes text in a
worker process under a time limit (:mod:`.html_converter`), and binary content
is refused without being downloaded.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, Field

from tributary_shared.core.netguard import (
    AddressPolicy,
    HostRejected,
    IPAddress,
    ends_in_number,
    parse_ipv4_literal,
    public_only,
)
from tributary_shared.runtime.destinations import (
    DestinationRefused,
    Resolver,
    checked_destination,
    system_resolver,
)

from .fetch_body import (
    BodyError,
    ContentKind,
    content_kind,
    decode_text,
    parse_content_type,
    read_capped,
    sniff_kind,
)
from .html_converter import HtmlConverter
from .html_text import PageText
from .registry import Tool, ToolError

#: Turns an HTML document into its text, off the event loop (:class:`HtmlConverter`).
HtmlToText = Callable[[str], Awaitable[PageText]]

DEFAULT_MAX_BYTES = 1024 * 1024
DEFAULT_MAX_CHARS = 50_000
DEFAULT_TIMEOUT_S = 20.0
DEFAULT_MAX_REDIRECTS = 5
DEFAULT_USER_AGENT = "TributaryAgent/0.1 (+fetch_url)"

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# A name may resolve to many addresses; try a few before giving up on connecting.
_MAX_CONNECT_ATTEMPTS = 3


class FetchUrlArgs(BaseModel):
    url: str = Field(
        min_length=1,
        max_length=2048,
        description="Absolute http:// or https:// URL of a public web page or text file.",
    )


@cache
def _default_ssl_context() -> ssl.SSLContext:
    # Built once: loading the CA bundle per fetch would cost more than the fetch.
    return httpx.create_ssl_context()


@dataclass(frozen=True, slots=True)
class _Target:
    """A URL whose destination passed the policy, with the addresses to connect to."""

    url: httpx.URL
    host_name: str | None  # None when the URL host is an address literal
    port: int
    addresses: tuple[IPAddress, ...]


def _canonical_numeric_host(text: str) -> str:
    """Rewrite an IPv4 host in any libc/browser form (``0177.0.0.1``) as a dotted quad.

    httpx refuses some of these forms outright and passes others through as
    names; rewriting first means every form is checked (and reported) as the
    address a browser would have reached. Safety does not depend on this: the
    host httpx ends up with is checked again before any connection.
    """
    parts = urlsplit(text)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if hostport.startswith("["):
        return text
    host, colon, port = hostport.partition(":")
    if not host or not ends_in_number(host.lower()):
        return text
    try:
        address = parse_ipv4_literal(host.lower())
    except HostRejected as exc:
        raise ToolError(f"refused: {exc}") from None
    return parts._replace(netloc=f"{userinfo}{at}{address}{colon}{port}").geturl()


def _parse_url(text: str) -> httpx.URL:
    try:
        url = httpx.URL(_canonical_numeric_host(text.strip()))
    except (httpx.InvalidURL, ValueError):
        raise ToolError("refused: not a valid URL") from None
    if url.scheme not in ("http", "https"):
        raise ToolError("refused: only http:// and https:// URLs can be fetched")
    if url.userinfo:
        raise ToolError("refused: URLs with credentials (user:password@) are not fetched")
    if url.port is not None and not 0 < url.port < 65536:
        raise ToolError("refused: invalid port")
    return url


def _effective_port(url: httpx.URL) -> int:
    if url.port is not None:
        return url.port
    return 443 if url.scheme == "https" else 80


class _UrlFetcher:
    def __init__(
        self,
        *,
        policy: AddressPolicy,
        resolver: Resolver,
        max_bytes: int,
        max_chars: int,
        timeout_s: float,
        max_redirects: int,
        user_agent: str,
        ssl_context: ssl.SSLContext | None,
        transport: httpx.AsyncBaseTransport | None,
        html_to_text: HtmlToText,
    ) -> None:
        self._policy = policy
        self._html_to_text = html_to_text
        self._resolver = resolver
        self._max_bytes = max_bytes
        self._max_chars = max_chars
        self._timeout_s = timeout_s
        self._max_redirects = max_redirects
        self._user_agent = user_agent
        self._ssl_context = ssl_context
        self._transport = transport

    async def __call__(self, args: FetchUrlArgs) -> str:
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._fetch(_parse_url(args.url))
        except TimeoutError:
            raise ToolError(f"fetch timed out after {self._timeout_s:g}s") from None
        except httpx.TimeoutException:
            raise ToolError("the server did not answer in time") from None

    # -- destination checks -------------------------------------------------

    async def _check(self, url: httpx.URL) -> _Target:
        try:
            checked = await checked_destination(
                url.raw_host, _effective_port(url), policy=self._policy, resolver=self._resolver
            )
        except DestinationRefused as exc:
            raise ToolError(str(exc)) from None
        return _Target(url, checked.host_name, checked.port, checked.addresses)

    # -- HTTP ----------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        if self._transport is not None:
            return httpx.AsyncClient(transport=self._transport, follow_redirects=False)
        return httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,  # a proxy from the environment would resolve names itself
            verify=self._ssl_context or _default_ssl_context(),
            timeout=httpx.Timeout(self._timeout_s),
            # No reuse: a pooled connection is keyed by IP, and reusing one
            # verified for another name would skip that name's TLS check.
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    def _pinned_request(
        self, client: httpx.AsyncClient, target: _Target, ip: IPAddress
    ) -> httpx.Request:
        url = target.url
        extensions: dict[str, str] = {}
        if target.host_name is not None and url.scheme == "https":
            extensions["sni_hostname"] = target.host_name
        return client.build_request(
            "GET",
            url.copy_with(host=str(ip)),
            headers={
                "Host": url.netloc.decode("ascii"),
                "User-Agent": self._user_agent,
                "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.5",
                "Accept-Encoding": "gzip, deflate",
            },
            extensions=extensions,
        )

    async def _send(self, client: httpx.AsyncClient, target: _Target) -> httpx.Response:
        shown = target.host_name or str(target.addresses[0])
        for ip in target.addresses[:_MAX_CONNECT_ATTEMPTS]:
            request = self._pinned_request(client, target, ip)
            try:
                return await client.send(request, stream=True)
            except httpx.ConnectError as exc:
                if _is_certificate_error(exc):
                    raise ToolError(f"TLS certificate verification failed for {shown}") from None
                continue
            except httpx.TransportError as exc:
                raise ToolError(f"request to {shown} failed ({_describe(exc)})") from None
        raise ToolError(f"could not connect to {shown} port {target.port}")

    async def _fetch(self, url: httpx.URL) -> str:
        original = url
        async with self._client() as client:
            for hop in range(self._max_redirects + 1):
                try:
                    target = await self._check(url)
                except ToolError as exc:
                    if hop:
                        raise ToolError(f"{exc} (redirected to {url})") from None
                    raise
                response = await self._send(client, target)
                try:
                    location = response.headers.get("location")
                    if response.status_code in _REDIRECT_STATUSES and location:
                        try:
                            url = _parse_url(str(url.join(location)))
                        except httpx.InvalidURL:
                            raise ToolError("refused: redirect to an invalid URL") from None
                        continue
                    return await self._render(response, url, original if hop else None)
                except httpx.TransportError as exc:
                    raise ToolError(f"reading the response failed ({_describe(exc)})") from None
                finally:
                    await response.aclose()
        raise ToolError(f"refused: too many redirects (more than {self._max_redirects})")

    # -- rendering -------------------------------------------------------------

    async def _render(
        self, response: httpx.Response, url: httpx.URL, original: httpx.URL | None
    ) -> str:
        status = response.status_code
        if not 200 <= status < 300:
            reason = response.reason_phrase or ""
            raise ToolError(f"HTTP {status} {reason}".rstrip() + f" from {url}")

        mime, charset = parse_content_type(response.headers.get("content-type", ""))
        kind = content_kind(mime)
        if kind is ContentKind.BINARY:
            raise ToolError(
                f"refused: content type {mime!r} is not text; only HTML and text can be read"
            )
        try:
            body = await read_capped(
                response.aiter_raw(), response.headers.get("content-encoding", ""), self._max_bytes
            )
        except BodyError as exc:
            raise ToolError(str(exc)) from None
        if kind is ContentKind.UNKNOWN:
            kind = sniff_kind(body.data)
            if kind is ContentKind.BINARY:
                raise ToolError("refused: the response is binary; only HTML and text can be read")

        text = decode_text(body.data, charset, html=kind is ContentKind.HTML)
        lines = [f"URL: {url}"]
        notes: list[str] = []
        if original is not None:
            lines.append(f"Redirected from: {original}")
        if kind is ContentKind.HTML:
            page = await self._html_to_text(text)
            if page.truncated:
                notes.append("[truncated: only the first part of the HTML was converted]")
            if page.title:
                lines.append(f"Title: {page.title}")
            text = page.text
        lines.append(f"Content-Type: {mime or 'unknown'}")

        if body.truncated:
            notes.append(f"[truncated: the response is larger than {self._max_bytes} bytes]")
        if len(text) > self._max_chars:
            text = text[: self._max_chars]
            notes.append(f"[truncated: text cut at {self._max_chars} characters]")
        content = text.strip() or "(no readable text)"
        return "\n".join(lines) + "\n\n" + content + "".join("\n\n" + n for n in notes)


def _is_certificate_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(5):  # walk the short cause chain httpx builds
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _describe(exc: httpx.TransportError) -> str:
    # The class name says what went wrong without echoing internal addresses.
    return type(exc).__name__


def make_fetch_url_tool(
    *,
    policy: AddressPolicy = public_only,
    resolver: Resolver = system_resolver,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_chars: int = DEFAULT_MAX_CHARS,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_redirects: int = DEFAULT_MAX_REDIRECTS,
    user_agent: str = DEFAULT_USER_AGENT,
    ssl_context: ssl.SSLContext | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    html_to_text: HtmlToText | None = None,
) -> Tool[FetchUrlArgs]:
    """Build the ``fetch_url`` tool.

    ``policy`` decides which ``(address, port)`` may be reached (default:
    public addresses only); ``resolver`` maps names to addresses. The tool's
    own deadline (``timeout_s``) covers all hops and the body; the registry's
    timeout is set a little later so that this clearer message wins.
    ``transport`` replaces the network entirely and exists for tests.
    ``html_to_text`` converts HTML pages; the default is an
    :class:`HtmlConverter` on the process-wide CPU pool, with its default limits.
    """
    if max_bytes <= 0 or max_chars <= 0 or timeout_s <= 0 or max_redirects < 0:
        raise ValueError("fetch_url limits must be positive")
    fetcher = _UrlFetcher(
        policy=policy,
        resolver=resolver,
        max_bytes=max_bytes,
        max_chars=max_chars,
        timeout_s=timeout_s,
        max_redirects=max_redirects,
        user_agent=user_agent,
        ssl_context=ssl_context,
        transport=transport,
        html_to_text=html_to_text or HtmlConverter(),
    )
    return Tool(
        name="fetch_url",
        description=(
            "Fetch a public web page or text file over http(s) and return its readable text "
            f"(title first; at most {max_bytes} bytes are read). Private and internal "
            "addresses are refused; binary files such as PDFs and images cannot be read."
        ),
        args_model=FetchUrlArgs,
        run=fetcher,
        timeout_s=timeout_s + 5.0,
        read_only=True,
    )
