"""The record of a workflow's LLM and tool calls, apart from how it is sent or read.

A recorded call is an ``llm.called`` or ``tool.called`` event (``core.events``).
Two rules keep the record small enough for Kafka while losing nothing:

* an agent's conversation grows by appending, so each LLM call stores only the
  messages after those it shares with the previous call of its scope
  (``messages_kept``); ``conversations`` puts them back together;
* a body still too large for one message (a long page a tool fetched, a long
  synthesis prompt) is cut into ``call.payload`` parts sent before the record,
  which names them by digest (``spill``); ``resolve`` joins them again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tributary_shared.core.events import (
    CallPayload,
    CallRecordBase,
    EventEnvelope,
    LLMCallBody,
    LLMCalled,
    PayloadRef,
    ToolCallBody,
    ToolCalled,
    encode_event,
)

__all__ = [
    "DEFAULT_INLINE_MAX_BYTES",
    "DEFAULT_PART_BYTES",
    "CallScope",
    "IncompleteRecord",
    "PayloadParts",
    "conversations",
    "kept_prefix",
    "resolve",
    "scope_of",
    "spill",
]

DEFAULT_INLINE_MAX_BYTES = 256 * 1024
"""A record encoded larger than this sends its body as parts. Kafka's default message
limit is 1 MiB; a quarter leaves room for headers and batching."""
DEFAULT_PART_BYTES = 256 * 1024


class IncompleteRecord(Exception):
    """A record names a payload whose parts are not all there."""


@dataclass(frozen=True, slots=True, order=True)
class CallScope:
    """The planning of a workflow, one attempt of one step, or the synthesis."""

    role: str
    step_id: str
    attempt: int


def scope_of(record: CallRecordBase) -> CallScope:
    return CallScope(record.role, record.step_id or "", record.attempt)


def kept_prefix(previous: Sequence[dict[str, Any]], messages: Sequence[dict[str, Any]]) -> int:
    """How many leading messages ``messages`` shares with ``previous``."""
    kept = 0
    for before, now in zip(previous, messages, strict=False):
        if before != now:
            break
        kept += 1
    return kept


def spill(
    record: LLMCalled | ToolCalled,
    *,
    inline_max_bytes: int = DEFAULT_INLINE_MAX_BYTES,
    part_bytes: int = DEFAULT_PART_BYTES,
) -> tuple[LLMCalled | ToolCalled, list[CallPayload]]:
    """The record as it is sent: unchanged when it fits ``inline_max_bytes``, else with
    its body moved into parts of at most ``part_bytes`` each (to send first)."""
    if record.body is None or len(encode_event(record)) <= inline_max_bytes:
        return record, []
    text = record.body.model_dump_json()
    data = text.encode()
    digest = hashlib.sha256(data).hexdigest()
    chunks = _utf8_chunks(data, part_bytes)
    parts = [
        CallPayload(
            workflow_id=record.workflow_id,
            tenant_id=record.tenant_id,
            causation_id=record.event_id,
            digest=digest,
            part=index,
            parts=len(chunks),
            data=chunk,
        )
        for index, chunk in enumerate(chunks)
    ]
    ref = PayloadRef(digest=digest, size=len(data), parts=len(chunks))
    return record.model_copy(update={"body": None, "payload": ref}), parts


def _utf8_chunks(data: bytes, size: int) -> list[str]:
    """``data`` cut into pieces of at most ``size`` bytes, never inside a character."""
    chunks: list[str] = []
    start = 0
    while start < len(data):
        end = min(len(data), start + max(4, size))
        while end < len(data) and data[end] & 0xC0 == 0x80:  # a continuation byte
            end -= 1
        chunks.append(data[start:end].decode())
        start = end
    return chunks


class PayloadParts:
    """The ``call.payload`` parts seen so far, to join each record with its own."""

    def __init__(self) -> None:
        self._parts: dict[str, dict[int, str]] = {}

    def add(self, part: CallPayload) -> None:
        self._parts.setdefault(part.digest, {})[part.part] = part.data

    def join(self, record: LLMCalled | ToolCalled) -> LLMCalled | ToolCalled:
        """``record`` with its body; raises ``IncompleteRecord`` when its parts are not
        all here (or do not match its digest)."""
        return _with_body(record, self._parts)


def resolve(events: Iterable[EventEnvelope]) -> list[LLMCalled | ToolCalled]:
    """The call records among ``events``, in their order, each with its body.

    Raises ``IncompleteRecord`` when a record's payload parts are missing.
    """
    parts = PayloadParts()
    records: list[LLMCalled | ToolCalled] = []
    for event in events:
        if isinstance(event, CallPayload):
            parts.add(event)
        elif isinstance(event, LLMCalled | ToolCalled):
            records.append(event)
    return [parts.join(record) for record in records]


def _with_body(
    record: LLMCalled | ToolCalled, parts: dict[str, dict[int, str]]
) -> LLMCalled | ToolCalled:
    ref = record.payload
    if ref is None:
        return record
    found = parts.get(ref.digest, {})
    if len(found) < ref.parts or any(index not in found for index in range(ref.parts)):
        raise IncompleteRecord(
            f"{record.type} {record.event_id} names payload {ref.digest[:12]}… of "
            f"{ref.parts} parts, of which {len(found)} were found"
        )
    text = "".join(found[index] for index in range(ref.parts))
    if hashlib.sha256(text.encode()).hexdigest() != ref.digest:
        raise IncompleteRecord(f"payload {ref.digest[:12]}… does not match its digest")
    body: LLMCallBody | ToolCallBody
    if isinstance(record, LLMCalled):
        body = LLMCallBody.model_validate_json(text)
    else:
        body = ToolCallBody.model_validate_json(text)
    return record.model_copy(update={"body": body, "payload": None})


def conversations(
    records: Iterable[LLMCalled],
) -> dict[tuple[CallScope, int], tuple[dict[str, Any], ...]]:
    """Each LLM call's whole message list, by (scope, sequence): the kept messages of
    the previous call of its scope followed by its own. Records must have bodies
    (``resolve``). A call whose previous one is missing gets what it stored."""
    whole: dict[tuple[CallScope, int], tuple[dict[str, Any], ...]] = {}
    for record in sorted(records, key=lambda r: (scope_of(r), r.sequence)):
        if record.body is None:
            raise IncompleteRecord(f"llm.called {record.event_id} has no body; resolve it first")
        request = record.body.request
        previous = whole.get((scope_of(record), record.sequence - 1), ())
        kept = previous[: request.messages_kept]
        whole[(scope_of(record), record.sequence)] = (*kept, *request.messages)
    return whole
