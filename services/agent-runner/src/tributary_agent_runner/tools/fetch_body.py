"""Reading a fetched body safely: size caps, content-encoding, charset and kind.

The body is read from the raw stream and decompressed here, with an output
bound on every step, instead of relying on the HTTP client's decoders: those
inflate a whole received chunk at once, so a small gzip bomb could expand to
many megabytes before any cap applies.
"""

from __future__ import annotations

import codecs
import re
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import Enum


class BodyError(Exception):
    """The body cannot be read as text; the message is safe to show to the model."""


class ContentKind(Enum):
    HTML = "html"
    TEXT = "text"
    UNKNOWN = "unknown"  # no Content-Type: decided by sniffing the bytes
    BINARY = "binary"


_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_TEXT_APPLICATION_TYPES = frozenset(
    {
        "application/json",
        "application/xml",
        "application/javascript",
        "application/x-javascript",
        "application/ecmascript",
        "application/yaml",
        "application/x-yaml",
        "application/toml",
        "application/x-ndjson",
        "application/csv",
        "application/sql",
        "application/graphql",
    }
)
_BINARY_MAJOR = frozenset({"image", "audio", "video", "font", "model", "multipart"})


def parse_content_type(header: str) -> tuple[str, str | None]:
    """Split ``text/html; charset=UTF-8`` into ``("text/html", "utf-8")``."""
    mime, _, params = header.partition(";")
    charset = None
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip("\"'").lower() or None
    return mime.strip().lower(), charset


def content_kind(mime: str) -> ContentKind:
    if mime == "":
        return ContentKind.UNKNOWN
    if mime in _HTML_TYPES:
        return ContentKind.HTML
    major, _, minor = mime.partition("/")
    if major in _BINARY_MAJOR:
        return ContentKind.BINARY
    if major == "text":
        return ContentKind.TEXT
    if mime in _TEXT_APPLICATION_TYPES or minor.endswith(("+json", "+xml")):
        return ContentKind.TEXT
    return ContentKind.BINARY


_HTML_START = re.compile(rb"^\s*(?:<!doctype\s+html|<html|<head|<body|<!--)", re.IGNORECASE)


def sniff_kind(body: bytes) -> ContentKind:
    """Decide HTML / text / binary for a body that came without a Content-Type."""
    head = body[:1024]
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return ContentKind.TEXT
    if b"\x00" in head:
        return ContentKind.BINARY
    if _HTML_START.match(head.removeprefix(codecs.BOM_UTF8)):
        return ContentKind.HTML
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut at the 1 KiB mark
            return ContentKind.BINARY
    return ContentKind.TEXT


_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9._:-]+)""", re.IGNORECASE
)


def decode_text(body: bytes, charset: str | None, *, html: bool) -> str:
    """Decode with the BOM, then the header charset, then ``<meta charset>``, then UTF-8."""
    for bom, name in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if body.startswith(bom):
            return body.decode(name, errors="replace")
    candidates: list[str | None] = [charset]
    if html:
        match = _META_CHARSET.search(body[:4096])
        candidates.append(match.group(1).decode("ascii").lower() if match else None)
    for candidate in candidates:
        if candidate:
            try:
                return body.decode(candidate, errors="replace")
            except LookupError:
                continue  # unknown, or not a text encoding (e.g. "base64")
    return body.decode("utf-8", errors="replace")


class _Inflater:
    """Incremental gzip/deflate decoder that never produces more than asked for."""

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        self._first = True
        if encoding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        else:  # deflate: nominally zlib-wrapped, raw deflate in the wild
            self._z = zlib.decompressobj()

    def feed(self, chunk: bytes, room: int) -> bytes:
        try:
            out = self._z.decompress(chunk, room)
        except zlib.error:
            if not (self._first and self._encoding == "deflate"):
                raise BodyError(f"the {self._encoding} response body is corrupt") from None
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)
            self._first = False
            return self.feed(chunk, room)
        self._first = False
        return out


@dataclass(frozen=True, slots=True)
class CappedBody:
    data: bytes
    truncated: bool


async def read_capped(
    raw_chunks: AsyncIterator[bytes], content_encoding: str, max_bytes: int
) -> CappedBody:
    """Read at most ``max_bytes`` of decoded body, noting whether more was available.

    Compressed input is also capped at ``max_bytes``, so a stream that inflates
    to nothing cannot be read for ever.
    """
    encoding = content_encoding.strip().lower()
    inflater: _Inflater | None = None
    if encoding in ("gzip", "x-gzip", "deflate"):
        inflater = _Inflater(encoding)
    elif encoding not in ("", "identity"):
        raise BodyError(f"unsupported content encoding {encoding!r}")

    out = bytearray()
    raw_read = 0
    async for chunk in raw_chunks:
        raw_read += len(chunk)
        room = max_bytes + 1 - len(out)  # one extra byte tells "exactly full" from "more"
        out += inflater.feed(chunk, room) if inflater else chunk[:room]
        if len(out) > max_bytes or raw_read > max_bytes:
            return CappedBody(bytes(out[:max_bytes]), truncated=True)
    return CappedBody(bytes(out), truncated=False)
