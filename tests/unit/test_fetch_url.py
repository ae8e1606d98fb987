"""fetch_url against a small HTTP site on 127.0.0.1 started by the tests.

The site is reached under a test policy that allows only its own exact
address and port; everything else stays under the default public-only policy,
so redirects out of the site into other loopback ports or private ranges must
still be refused.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tributary_agent_runner.tools.cpu_pool import CpuPool
from tributary_agent_runner.tools.fetch_url import FetchUrlArgs, make_fetch_url_tool
from tributary_agent_runner.tools.html_converter import HtmlConverter
from tributary_agent_runner.tools.registry import Tool, ToolError
from tributary_shared.core.netguard import IPAddress, allow_exact

LOOPBACK = "127.0.0.1"

# --- a tiny HTTP/1.1 server ---------------------------------------------------------


@dataclass
class Request:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


Handler = Callable[[Request], Awaitable[Reply]]

REASONS = {200: "OK", 302: "Found", 404: "Not Found"}


@dataclass
class Site:
    port: int
    connections: int = 0
    requests: list[Request] = field(default_factory=list)

    def url(self, path: str, host: str = LOOPBACK) -> str:
        return f"http://{host}:{self.port}{path}"


@dataclass
class _Server:
    site: Site
    server: asyncio.Server
    tasks: set[asyncio.Task[None]]

    async def close(self) -> None:
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()


async def start_site(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> _Server:
    tasks: set[asyncio.Task[None]] = set()
    holder: list[Site] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        site = holder[0]
        site.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            target = request_line.split(" ")[1]
            parts = urlsplit(target)
            headers = {}
            for line in header_lines:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            request = Request(parts.path, parse_qs(parts.query), headers)
            site.requests.append(request)
            reply = await handler(request)
            lines = [f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, 'Status')}"]
            all_headers = {"Content-Length": str(len(reply.body)), "Connection": "close"}
            all_headers.update(reply.headers)
            lines += [f"{k}: {v}" for k, v in all_headers.items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + reply.body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()
            with suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()
            tasks.discard(task)

    server = await asyncio.start_server(serve, LOOPBACK, 0, ssl=ssl_context)
    port = server.sockets[0].getsockname()[1]
    holder.append(Site(port))
    return _Server(holder[0], server, tasks)


# --- the test site ----------------------------------------------------------------------

PAGE = b"""<!doctype html>
<html><head><title>Test &amp; Page</title>
<style>body { color: red }</style><script>alert("x")</script></head>
<body><nav><a href="/">Home</a> <a href="/about">About</a></nav>
<h1>Main heading</h1>
<p>First paragraph with <b>bold</b> text.</p>
<p>Second paragraph.</p>
<footer>Copyright footer</footer></body></html>"""

BIG_TEXT = b"0123456789abcdef" * 16 * 1024  # 256 KiB
BOMB = gzip.compress(b"a" * (16 * 1024 * 1024), compresslevel=9)  # 16 MiB inflated
# Tag-dense HTML: about 2 s of parsing per MiB.
TAG_SOUP = b"<html><body>" + b"<div><b><i>x</i></b><span class=a>" * (1024 * 1024 // 34)


async def site_handler(request: Request) -> Reply:
    path = request.path
    if path == "/page":
        return Reply(headers={"Content-Type": "text/html; charset=utf-8"}, body=PAGE)
    if path == "/latin1":
        body = '<html><head><meta charset="iso-8859-1"><title>Caf\xe9</title></head><body>'
        body += "<p>na\xefve</p></body></html>"
        return Reply(headers={"Content-Type": "text/html"}, body=body.encode("latin-1"))
    if path == "/plain":
        return Reply(headers={"Content-Type": "text/plain"}, body=b"just  some\ntext")
    if path == "/json":
        return Reply(headers={"Content-Type": "application/json"}, body=b'{"a": 1}')
    if path == "/big":
        return Reply(headers={"Content-Type": "text/plain"}, body=BIG_TEXT)
    if path == "/bomb":
        headers = {"Content-Type": "text/plain", "Content-Encoding": "gzip"}
        return Reply(headers=headers, body=BOMB)
    if path == "/soup":
        return Reply(headers={"Content-Type": "text/html"}, body=TAG_SOUP)
    if path == "/gzip":
        headers = {"Content-Type": "text/html", "Content-Encoding": "gzip"}
        return Reply(headers=headers, body=gzip.compress(PAGE))
    if path == "/pdf":
        return Reply(headers={"Content-Type": "application/pdf"}, body=b"%PDF-1.4 \x00\x01")
    if path == "/untyped-binary":
        return Reply(body=b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    if path == "/untyped-html":
        return Reply(body=b"<!DOCTYPE html><title>Sniffed</title><p>hello</p>")
    if path == "/echo-host":
        return Reply(headers={"Content-Type": "text/plain"}, body=request.headers["host"].encode())
    if path == "/redirect":
        return Reply(302, {"Location": request.query["to"][0]})
    if path.startswith("/loop/"):
        n = int(path.rsplit("/", 1)[1])
        return Reply(302, {"Location": f"/loop/{n + 1}"})
    if path == "/slow":
        await asyncio.sleep(30)
        return Reply(body=b"too late")
    return Reply(404, {"Content-Type": "text/plain"}, b"no such page")


@pytest.fixture(scope="module")
async def site() -> AsyncIterator[Site]:
    server = await start_site(site_handler)
    try:
        yield server.site
    finally:
        await server.close()


@pytest.fixture(scope="module")
async def internal() -> AsyncIterator[Site]:
    """Another loopback service the site tries to steer the fetcher into."""

    async def secret(request: Request) -> Reply:
        return Reply(body=b"internal secret")

    server = await start_site(secret)
    try:
        yield server.site
    finally:
        await server.close()


def site_tool(site: Site, **kwargs: object) -> Tool[FetchUrlArgs]:
    return make_fetch_url_tool(policy=allow_exact((LOOPBACK, site.port)), **kwargs)  # type: ignore[arg-type]


async def fetch(tool: Tool[FetchUrlArgs], url: str) -> str:
    return await tool.invoke(json.dumps({"url": url}))


# --- positive paths -----------------------------------------------------------------------


async def test_html_becomes_readable_text(site: Site) -> None:
    result = await fetch(site_tool(site), site.url("/page"))
    head, _, body = result.partition("\n\n")
    assert head.splitlines()[:2] == [f"URL: {site.url('/page')}", "Title: Test & Page"]
    assert "Content-Type: text/html" in head
    assert body.splitlines()[0] == "# Main heading"
    assert "First paragraph with bold text." in body
    assert "Second paragraph." in body
    for dropped in ("alert", "color: red", "Home", "About", "Copyright"):
        assert dropped not in result


async def test_charset_from_meta_tag(site: Site) -> None:
    result = await fetch(site_tool(site), site.url("/latin1"))
    assert "Title: Café" in result
    assert "naïve" in result


async def test_plain_text_and_json_pass_through(site: Site) -> None:
    tool = site_tool(site)
    assert (await fetch(tool, site.url("/plain"))).endswith("\n\njust  some\ntext")
    assert (await fetch(tool, site.url("/json"))).endswith('\n\n{"a": 1}')


async def test_gzip_body_is_decoded(site: Site) -> None:
    result = await fetch(site_tool(site), site.url("/gzip"))
    assert "Title: Test & Page" in result
    assert "First paragraph with bold text." in result


async def test_content_type_sniffed_when_missing(site: Site) -> None:
    result = await fetch(site_tool(site), site.url("/untyped-html"))
    assert "Title: Sniffed" in result
    assert result.endswith("hello")


async def test_size_cap_truncates_and_says_so(site: Site) -> None:
    result = await fetch(site_tool(site, max_bytes=10_000), site.url("/big"))
    assert "[truncated: the response is larger than 10000 bytes]" in result
    body = result.split("\n\n")[1]
    assert body == BIG_TEXT[:10_000].decode()


async def test_gzip_bomb_stops_at_the_cap(site: Site) -> None:
    result = await fetch(site_tool(site, max_bytes=50_000), site.url("/bomb"))
    assert "[truncated: the response is larger than 50000 bytes]" in result
    assert result.split("\n\n")[1] == "a" * 50_000


async def test_text_cap_for_the_model(site: Site) -> None:
    result = await fetch(site_tool(site, max_chars=100), site.url("/big"))
    assert "[truncated: text cut at 100 characters]" in result
    assert result.split("\n\n")[1] == BIG_TEXT[:100].decode()


async def test_redirect_within_the_site_is_followed(site: Site) -> None:
    start = site.url("/redirect?to=/page")
    result = await fetch(site_tool(site), start)
    assert result.startswith(f"URL: {site.url('/page')}\nRedirected from: {start}\n")


async def test_name_is_resolved_once_and_connection_pinned(site: Site) -> None:
    # "pinned.test" does not exist in any DNS: the fetch can only succeed if the
    # connection goes to the address the injected resolver returned and checked.
    calls: list[str] = []

    async def resolver(host: str, port: int) -> Sequence[IPAddress]:
        calls.append(host)
        return [IPv4Address(LOOPBACK)]

    tool = site_tool(site, resolver=resolver)
    result = await fetch(tool, site.url("/echo-host", host="pinned.test"))
    assert result.endswith(f"\n\npinned.test:{site.port}")
    assert calls == ["pinned.test"]


# --- refusals and failures ------------------------------------------------------------------


async def test_too_many_redirects(site: Site) -> None:
    tool = site_tool(site, max_redirects=3)
    with pytest.raises(ToolError, match=r"^refused: too many redirects \(more than 3\)$"):
        await fetch(tool, site.url("/loop/0"))
    assert [r.path for r in site.requests[-4:]] == ["/loop/0", "/loop/1", "/loop/2", "/loop/3"]


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://10.0.0.1/", "private address"),
        ("http://169.254.169.254/latest/meta-data/", "link-local address"),
        ("http://[::ffff:192.168.0.1]/", "private address"),
        ("http://2130706433/", "loopback address"),
        ("file:///etc/passwd", "only http:// and https://"),
    ],
)
async def test_redirect_into_a_blocked_target_is_refused(
    site: Site, target: str, reason: str
) -> None:
    with pytest.raises(ToolError, match=r"^refused: ") as info:
        await fetch(site_tool(site), site.url(f"/redirect?to={target}"))
    assert reason in str(info.value)


async def test_redirect_to_another_loopback_port_is_refused(site: Site, internal: Site) -> None:
    for target in (internal.url("/"), f"http://localhost:{internal.port}/"):
        with pytest.raises(ToolError, match=r"^refused: .*loopback address"):
            await fetch(site_tool(site), site.url(f"/redirect?to={target}"))
    assert internal.connections == 0


async def test_non_http_scheme_is_refused(site: Site) -> None:
    for url in ("ftp://127.0.0.1/", "file:///etc/passwd", "gopher://127.0.0.1:70/", "x"):
        with pytest.raises(ToolError, match=r"^refused: only http:// and https://"):
            await fetch(site_tool(site), url)


async def test_binary_content_type_is_refused(site: Site) -> None:
    with pytest.raises(ToolError, match=r"^refused: content type 'application/pdf' is not text"):
        await fetch(site_tool(site), site.url("/pdf"))


async def test_untyped_binary_is_refused(site: Site) -> None:
    with pytest.raises(ToolError, match=r"^refused: the response is binary"):
        await fetch(site_tool(site), site.url("/untyped-binary"))


async def test_http_error_status(site: Site) -> None:
    with pytest.raises(ToolError, match=r"^HTTP 404 Not Found from http://127\.0\.0\.1:\d+/nope$"):
        await fetch(site_tool(site), site.url("/nope"))


async def test_timeout(site: Site) -> None:
    tool = site_tool(site, timeout_s=0.3)
    with pytest.raises(ToolError, match=r"timed out after 0\.3s|did not answer in time"):
        await fetch(tool, site.url("/slow"))


async def test_connection_refused_is_a_clean_error(site: Site) -> None:
    server = await start_site(site_handler)
    port = server.site.port
    await server.close()
    tool = make_fetch_url_tool(policy=allow_exact((LOOPBACK, port)))
    with pytest.raises(ToolError, match=rf"^could not connect to 127\.0\.0\.1 port {port}$"):
        await fetch(tool, f"http://{LOOPBACK}:{port}/")


@pytest.fixture
async def cpu_pool() -> AsyncIterator[CpuPool]:
    pool = CpuPool(processes=1)
    try:
        yield pool
    finally:
        pool.close()


async def test_html_conversion_has_its_own_time_limit(site: Site, cpu_pool: CpuPool) -> None:
    tool = site_tool(site, html_to_text=HtmlConverter(cpu_pool, timeout_s=0.2))
    with pytest.raises(ToolError, match=r"could not be turned into text within 0\.2s"):
        await fetch(tool, site.url("/soup"))
    # The killed worker is replaced: the next page converts.
    assert "Title: Test & Page" in await fetch(tool, site.url("/page"))


async def test_html_past_the_conversion_cap_is_cut_and_says_so(
    site: Site, cpu_pool: CpuPool
) -> None:
    tool = site_tool(site, html_to_text=HtmlConverter(cpu_pool, max_chars=200))
    result = await fetch(tool, site.url("/page"))
    assert "[truncated: only the first part of the HTML was converted]" in result
    assert "Second paragraph." not in result


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="positive"):
        make_fetch_url_tool(max_bytes=0)


# --- pinning as seen by the transport -------------------------------------------------------


async def test_https_request_carries_name_in_host_and_sni() -> None:
    """Default policy, public answer: the request goes to the IP, the name rides along."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, headers={"Content-Type": "text/plain"}, stream=httpx.ByteStream(b"ok")
        )

    async def resolver(host: str, port: int) -> Sequence[IPAddress]:
        return [IPv4Address("93.184.216.34")]

    tool = make_fetch_url_tool(resolver=resolver, transport=httpx.MockTransport(handler))
    result = await fetch(tool, "https://www.example.com:8443/a?b=c")
    assert result.endswith("\n\nok")
    (request,) = seen
    assert str(request.url) == "https://93.184.216.34:8443/a?b=c"
    assert request.headers["host"] == "www.example.com:8443"
    assert request.extensions["sni_hostname"] == "www.example.com"


# --- real TLS, to show certificate checks still use the name -------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=site.test",
            "-addext",
            "subjectAltName=DNS:site.test",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_tls_verifies_the_original_name(tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    server = await start_site(site_handler, ssl_context=server_ctx)
    port = server.site.port

    async def resolver(host: str, port: int) -> Sequence[IPAddress]:
        return [IPv4Address(LOOPBACK)]

    try:
        tool = make_fetch_url_tool(
            policy=allow_exact((LOOPBACK, port)), resolver=resolver, ssl_context=client_ctx
        )
        result = await fetch(tool, f"https://site.test:{port}/echo-host")
        assert result.endswith(f"\n\nsite.test:{port}")
        with pytest.raises(
            ToolError, match=r"^TLS certificate verification failed for other\.test$"
        ):
            await fetch(tool, f"https://other.test:{port}/echo-host")
    finally:
        await server.close()
