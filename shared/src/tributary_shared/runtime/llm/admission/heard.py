"""The headers of the response an admitted call got, caught on their way through httpx.

The SDK parses a completion and drops its headers; an httpx response hook
(``note_rate_limit_headers``, installed on the LLM client's connection pools)
sees every response first, 429s included, and hands its headers to the call
being admitted in the same task (a context variable ``listening`` sets).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import httpx2

__all__ = ["Heard", "listening", "note_rate_limit_headers"]


@dataclass
class Heard:
    headers: Mapping[str, str] | None = None


_HEARD: ContextVar[Heard | None] = ContextVar("tributary_llm_heard", default=None)


@contextmanager
def listening() -> Iterator[Heard]:
    """Catch the headers of the responses received in this task until the block ends."""
    heard = Heard()
    token = _HEARD.set(heard)
    try:
        yield heard
    finally:
        _HEARD.reset(token)


async def note_rate_limit_headers(response: httpx2.Response) -> None:
    """httpx ``response`` event hook: hand the headers to the call admitted in this task."""
    heard = _HEARD.get()
    if heard is not None:
        heard.headers = response.headers
