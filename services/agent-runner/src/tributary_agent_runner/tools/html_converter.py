"""HTML to text off the event loop: bounded input and a hard time limit.

:func:`.html_text.html_to_text` is pure Python and costs about 2 s per MiB of
tag-dense markup, which a fetched page controls. :class:`HtmlConverter` cuts
the HTML to ``max_chars`` before anything parses it and runs the conversion in
a worker process of a :class:`.cpu_pool.CpuPool`, killed after ``timeout_s``.
The event loop stays free to heartbeat Kafka and run the other steps.
"""

from __future__ import annotations

import dataclasses

from .cpu_pool import CpuPool, CpuWorkerLost, CpuWorkTimedOut, shared_cpu_pool
from .html_text import PageText, html_to_text
from .registry import ToolError

__all__ = ["DEFAULT_HTML_MAX_CHARS", "DEFAULT_HTML_TIMEOUT_S", "HtmlConverter"]

#: Characters of HTML converted; the rest is dropped before parsing.
DEFAULT_HTML_MAX_CHARS = 2 * 1024 * 1024
#: A conversion's limit in its worker process; the default input takes about 5 s at worst.
DEFAULT_HTML_TIMEOUT_S = 10.0


class HtmlConverter:
    """Converts HTML to :class:`PageText` in a worker process; failures are ToolErrors."""

    def __init__(
        self,
        pool: CpuPool | None = None,
        *,
        timeout_s: float = DEFAULT_HTML_TIMEOUT_S,
        max_chars: int = DEFAULT_HTML_MAX_CHARS,
    ) -> None:
        if timeout_s <= 0 or max_chars <= 0:
            raise ValueError("HTML conversion limits must be positive")
        self._pool = pool
        self._timeout_s = timeout_s
        self._max_chars = max_chars

    async def __call__(self, html: str) -> PageText:
        truncated = len(html) > self._max_chars
        pool = self._pool or shared_cpu_pool()
        try:
            page = await pool.run(html_to_text, html[: self._max_chars], timeout_s=self._timeout_s)
        except CpuWorkTimedOut:
            raise ToolError(
                f"the page's HTML could not be turned into text within {self._timeout_s:g}s "
                "(the limit for one page); try another source"
            ) from None
        except CpuWorkerLost:
            raise ToolError("the page's HTML could not be turned into text") from None
        return dataclasses.replace(page, truncated=truncated) if truncated else page
