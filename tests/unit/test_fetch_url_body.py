"""Pure parts of fetch_url: HTML to text, content kinds, charsets and capped decoding."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator

import pytest

from tributary_agent_runner.tools.fetch_body import (
    BodyError,
    ContentKind,
    content_kind,
    decode_text,
    parse_content_type,
    read_capped,
    sniff_kind,
)
from tributary_agent_runner.tools.html_text import html_to_text, inline_text


def test_html_structure_is_kept_and_chrome_dropped() -> None:
    page = html_to_text(
        """<html><head><title>T</title><script>var a = "<p>x</p>";</script></head><body>
        <header><h1>Top</h1></header>
        <nav><ul><li>menu</li></ul></nav>
        <svg><title>icon title</title><text>svg text</text></svg>
        <main><h2>Sub</h2><p>Para   one<br>continued</p>
        <ul><li><p>item a</p></li><li>item b</ul>
        <pre>  keep
    spacing</pre>
        <table><tr><th>k</th><th>v</th></tr><tr><td>1</td><td>2</td></tr></table>
        <img src="x.png" alt="a chart"></main>
        <aside>related</aside><form><button>Go</button></form><footer>legal</footer>
        </body></html>"""
    )
    assert page.title == "T"
    assert page.text.split("\n\n") == [
        "# Top",
        "## Sub",
        "Para one continued",
        "- item a",
        "- item b",
        "  keep\n    spacing",
        "k | v",
        "1 | 2",
        "[a chart]",
    ]


def test_html_without_head_or_title() -> None:
    page = html_to_text("<p>a &lt; b &amp;&amp; c</p><p></p>")
    assert page.title is None
    assert page.text == "a < b && c"


def test_unclosed_and_broken_markup_does_not_raise() -> None:
    page = html_to_text("<div><p>one<p>two</div></span><b>three" + "<div>" * 10_000 + "deep")
    assert page.text.split("\n\n") == ["one", "two", "three", "deep"]


def test_inline_text() -> None:
    assert inline_text("A <strong>bold</strong>\n claim &#x27;1&#x27;") == "A bold claim '1'"


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        ("text/html; charset=utf-8", ContentKind.HTML),
        ("application/xhtml+xml", ContentKind.HTML),
        ("text/plain", ContentKind.TEXT),
        ("text/markdown", ContentKind.TEXT),
        ("application/json", ContentKind.TEXT),
        ("application/ld+json", ContentKind.TEXT),
        ("application/rss+xml", ContentKind.TEXT),
        ("", ContentKind.UNKNOWN),
        ("application/pdf", ContentKind.BINARY),
        ("application/octet-stream", ContentKind.BINARY),
        ("application/zip", ContentKind.BINARY),
        ("image/svg+xml", ContentKind.BINARY),
        ("image/png", ContentKind.BINARY),
        ("video/mp4", ContentKind.BINARY),
    ],
)
def test_content_kinds(header: str, kind: ContentKind) -> None:
    assert content_kind(parse_content_type(header)[0]) is kind


def test_parse_content_type() -> None:
    assert parse_content_type('Text/HTML; Charset="ISO-8859-1"') == ("text/html", "iso-8859-1")
    assert parse_content_type("text/plain") == ("text/plain", None)


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"<!DOCTYPE html><p>x", ContentKind.HTML),
        (b"\xef\xbb\xbf  <html>", ContentKind.HTML),
        (b"plain words", ContentKind.TEXT),
        (b"caf\xc3\xa9", ContentKind.TEXT),
        (b"\x89PNG\r\n\x1a\n\x00", ContentKind.BINARY),
        (b"\xff\xd8\xff\xe0 jpeg \xfe\xfa\xfb\xfc\xfd", ContentKind.BINARY),
    ],
)
def test_sniffing(body: bytes, kind: ContentKind) -> None:
    assert sniff_kind(body) is kind


def test_decode_text_order() -> None:
    latin = "café".encode("latin-1")
    assert decode_text(latin, "iso-8859-1", html=False) == "café"
    meta = b'<meta charset="windows-1252">' + latin
    assert decode_text(meta, None, html=True).endswith("café")
    assert decode_text(meta, "bogus-charset", html=True).endswith("café")
    assert decode_text("café".encode(), "base64", html=False) == "café"  # not a text codec
    assert decode_text(b"\xef\xbb\xbfhi", "latin-1", html=False) == "hi"  # BOM wins


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_read_capped_identity() -> None:
    body = await read_capped(chunks(b"abc", b"def"), "", 10)
    assert (body.data, body.truncated) == (b"abcdef", False)
    body = await read_capped(chunks(b"abc", b"def"), "identity", 6)
    assert (body.data, body.truncated) == (b"abcdef", False)
    body = await read_capped(chunks(b"abc", b"defg"), "", 6)
    assert (body.data, body.truncated) == (b"abcdef", True)


async def test_read_capped_deflate_zlib_and_raw() -> None:
    text = b"hello " * 100
    wrapped = zlib.compress(text)
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw_bytes = raw.compress(text) + raw.flush()
    for encoded in (wrapped, raw_bytes):
        body = await read_capped(chunks(encoded[:10], encoded[10:]), "deflate", 10_000)
        assert (body.data, body.truncated) == (text, False)


async def test_read_capped_limits_inflation() -> None:
    bomb = gzip.compress(b"\0" * 5_000_000)
    body = await read_capped(chunks(bomb), "gzip", 1000)
    assert (len(body.data), body.truncated) == (1000, True)


async def test_read_capped_errors() -> None:
    with pytest.raises(BodyError, match="unsupported content encoding 'br'"):
        await read_capped(chunks(b"x"), "br", 10)
    with pytest.raises(BodyError, match="the gzip response body is corrupt"):
        await read_capped(chunks(b"not gzip at all"), "gzip", 10)
