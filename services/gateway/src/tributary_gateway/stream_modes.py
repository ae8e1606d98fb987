"""What an event stream (``GET /v1/workflows/{id}/events``) sends, by its ``mode``.

- ``lifecycle`` (the default): the workflow's events, without call records.
- ``tools``: and each ``tool.called`` record, the tool call with its arguments and
  result; a body too large for one message (sent in ``call.payload`` parts) is
  joined back into the record, so the stream never sends parts.
- ``tokens``: all of ``tools``, and the live ``llm.delta`` events of the agents'
  and the synthesizer's calls (``core.deltas``), which carry no SSE ``id``.

``llm.called`` records (the whole request and response of every LLM call) stay
with ``calls=true``, which adds every call record and its ``call.payload``
parts as they are logged, in any mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from enum import StrEnum
from typing import TypeVar

from pydantic import ValidationError

from tributary_shared.core.events import (
    CALL_RECORD_TYPES,
    CallPayload,
    LLMCalled,
    ToolCallBody,
    ToolCalled,
)
from tributary_shared.core.records import LogEntry

__all__ = ["EventFilter", "StreamMode", "merged"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class StreamMode(StrEnum):
    LIFECYCLE = "lifecycle"
    TOOLS = "tools"
    TOKENS = "tokens"


class EventFilter:
    """Decides, entry by entry of the workflow's log, what a stream sends."""

    def __init__(self, mode: StreamMode, *, calls: bool) -> None:
        self.mode = mode
        self.calls = calls
        self._parts: dict[str, dict[int, str]] = {}

    def sent(self, entry: LogEntry) -> str | None:
        """The JSON to send for ``entry``, or None when this stream does not send it."""
        if entry.type not in CALL_RECORD_TYPES or self.calls:
            return entry.event_json
        if self.mode is StreamMode.LIFECYCLE:
            return None
        if entry.type == "call.payload":
            part = CallPayload.model_validate_json(entry.event_json)
            self._parts.setdefault(part.digest, {})[part.part] = part.data
            return None
        if entry.type == "llm.called":
            self._forget_parts_of(entry)
            return None
        return self._tool_call(entry)

    def _tool_call(self, entry: LogEntry) -> str:
        record = ToolCalled.model_validate_json(entry.event_json)
        ref = record.payload
        if ref is None:
            return entry.event_json
        parts = self._parts.pop(ref.digest, {})
        if any(index not in parts for index in range(ref.parts)):
            # Its parts were logged before this stream's start: sent as it is.
            return entry.event_json
        try:
            body = ToolCallBody.model_validate_json("".join(parts[i] for i in range(ref.parts)))
        except ValidationError:
            return entry.event_json
        return record.model_copy(update={"body": body, "payload": None}).model_dump_json()

    def _forget_parts_of(self, entry: LogEntry) -> None:
        """An ``llm.called`` record's parts are not sent: let them go."""
        digest = _payload_digest(entry.event_json)
        if digest is not None:
            self._parts.pop(digest, None)


def _payload_digest(event_json: str) -> str | None:
    try:
        ref = LLMCalled.model_validate_json(event_json).payload
    except ValidationError:
        return None
    return ref.digest if ref is not None else None


async def merged(primary: AsyncIterator[T], secondary: AsyncIterator[T]) -> AsyncIterator[T]:
    """The items of both as they come, until ``primary`` ends; its errors propagate.

    ``secondary`` ending or failing ends only its part: the live deltas of a
    stream are worth less than its durable events.
    """
    next_primary = asyncio.create_task(_next(primary))
    next_secondary: asyncio.Future[T] | None = asyncio.create_task(_next(secondary))
    try:
        while True:
            waiting = {next_primary} if next_secondary is None else {next_primary, next_secondary}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if next_secondary is not None and next_secondary in done:
                try:
                    item = next_secondary.result()
                except StopAsyncIteration:
                    next_secondary = None
                except Exception:
                    log.warning("live deltas stopped; the durable events go on", exc_info=True)
                    next_secondary = None
                else:
                    yield item
                    next_secondary = asyncio.create_task(_next(secondary))
            if next_primary in done:
                try:
                    item = next_primary.result()
                except StopAsyncIteration:
                    return
                yield item
                next_primary = asyncio.create_task(_next(primary))
    finally:
        for task in (next_primary, next_secondary):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


async def _next(iterator: AsyncIterator[T]) -> T:
    return await anext(iterator)
