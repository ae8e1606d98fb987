"""HTML to readable text for a language model.

The standard library's event parser is used on purpose: it never builds a
tree (no recursion limits on hostile, deeply nested markup), tolerates broken
HTML, and treats ``<script>``/``<style>`` bodies as raw text. The output keeps
what a reader would see in the main content -- title, headings, paragraphs,
list items, preformatted blocks -- and drops scripts, styles, navigation and
other chrome that only costs context.

Parsing costs about 2 s per MiB of tag-dense markup, so a whole page is never
converted on the event loop: :mod:`.html_converter` runs :func:`html_to_text`
in a worker process. Only short fragments (:func:`inline_text`) are converted
in place, and they are cut to :data:`MAX_INLINE_CHARS` first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

# Elements whose whole subtree is dropped. These need explicit end tags in
# HTML, so depth counting on start/end tags stays balanced in practice.
_SKIP = frozenset(
    {
        "script",
        "style",
        "noscript",
        "template",
        "svg",
        "math",
        "canvas",
        "iframe",
        "object",
        "nav",
        "aside",
        "footer",
        "form",
        "select",
        "button",
    }
)
# Elements that start and end a block of text.
_BLOCK = frozenset(
    {
        "address",
        "article",
        "blockquote",
        "body",
        "dd",
        "details",
        "dialog",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "header",
        "hr",
        "li",
        "main",
        "ol",
        "p",
        "section",
        "summary",
        "table",
        "tbody",
        "thead",
        "tfoot",
        "tr",
        "ul",
    }
)
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_CELLS = frozenset({"td", "th"})
_WS = re.compile(r"\s+")

#: Longest fragment :func:`inline_text` parses (a few milliseconds at worst).
MAX_INLINE_CHARS = 4096

__all__ = ["MAX_INLINE_CHARS", "PageText", "html_to_text", "inline_text"]


@dataclass(frozen=True, slots=True)
class PageText:
    title: str | None
    text: str
    #: Only the first part of the HTML was converted (it was longer than allowed).
    truncated: bool = False


class _Extractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title_parts: list[str] = []
        self.blocks: list[str] = []
        self._current: list[str] = []
        self._prefix = ""
        self._skip_depth = 0
        self._in_title = False
        self._in_head = False
        self._pre_depth = 0

    # -- block assembly ----------------------------------------------------

    def _flush(self) -> None:
        raw = "".join(self._current)
        text = raw.strip("\n") if self._pre_depth else _WS.sub(" ", raw).strip()
        self._current = []
        if text:
            self.blocks.append(self._prefix + text)
            # A prefix ("- ", "## ") waits for the first text, so that
            # <li><p>item</p></li> still renders as one list item.
            self._prefix = ""

    # -- parser callbacks --------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "head":
            self._in_head = True
            return
        if tag == "body":
            self._in_head = False
        if tag == "title" and not self._skip_depth and not self.title_parts:
            # Only the document title: <svg> has <title> elements of its own.
            self._in_title = True
            return
        if tag in _SKIP:
            self._skip_depth += 1
            return
        if self._skip_depth:
            return
        if tag in _HEADINGS:
            self._flush()
            self._prefix = "#" * _HEADINGS[tag] + " "
        elif tag == "li":
            self._flush()
            self._prefix = "- "
        elif tag == "pre":
            self._flush()
            self._pre_depth += 1
        elif tag in _BLOCK:
            self._flush()
        elif tag == "br":
            self._current.append("\n" if self._pre_depth else " ")
        elif tag in _CELLS:
            self._current.append(" | " if self._current else "")
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self._current.append(f" [{alt.strip()}] ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
            return
        if tag == "head":
            self._in_head = False
            return
        if tag in _SKIP:
            self._skip_depth = max(0, self._skip_depth - 1)
            return
        if self._skip_depth:
            return
        if tag == "pre":
            self._flush()
            self._pre_depth = max(0, self._pre_depth - 1)
        elif tag in _HEADINGS or tag in _BLOCK:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title_parts.append(data)
        elif not self._skip_depth and not self._in_head:
            self._current.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def html_to_text(html: str) -> PageText:
    """Extract the title and the readable text of an HTML document."""
    parser = _Extractor()
    parser.feed(html)
    parser.close()
    title = _WS.sub(" ", "".join(parser.title_parts)).strip() or None
    return PageText(title=title, text="\n\n".join(parser.blocks))


def inline_text(fragment: str) -> str:
    """Plain text of a short HTML fragment (e.g. a search snippet with ``<strong>``).

    Runs on the caller's thread, so the fragment is cut to
    :data:`MAX_INLINE_CHARS` before it is parsed.
    """
    return " ".join(html_to_text(fragment[:MAX_INLINE_CHARS]).text.split())
