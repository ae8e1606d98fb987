"""A minimal Server-Sent Events parser (the subset the gateway emits), pure."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    data: str
    id: str | None


class SseParser:
    """Feed lines (without their line ending); complete events come back.

    Follows the WHATWG rules that matter here: ``data`` lines are joined with
    newlines, a blank line dispatches, ``:`` lines are comments (keep-alive
    pings), one space after the colon is dropped, the last id is remembered.
    """

    def __init__(self) -> None:
        self.last_event_id: str | None = None
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, line: str) -> SseEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        return None

    def _dispatch(self) -> SseEvent | None:
        if self._id is not None:
            self.last_event_id = self._id
        if not self._data:
            self._event, self._id = "", None
            return None
        event = SseEvent(self._event or "message", "\n".join(self._data), self._id)
        self._event, self._data, self._id = "", [], None
        return event


def parse_lines(lines: Iterable[str], parser: SseParser | None = None) -> Iterator[SseEvent]:
    """Events from an iterable of lines (e.g. ``httpx.Response.iter_lines()``)."""
    parser = parser if parser is not None else SseParser()
    for line in lines:
        event = parser.feed(line.rstrip("\r\n"))
        if event is not None:
            yield event
