"""A page of a workflow's recorded calls, read from its log.

Call records sit in the workflow's log among its other events; a body too
large for one message comes first as ``call.payload`` parts, which this joins
back (``core.recording``) so that a client gets each call whole.
"""

from __future__ import annotations

import contextlib

from tributary_shared.core.events import (
    CALL_RECORD_TYPES,
    CallPayload,
    LLMCalled,
    ToolCalled,
    decode_event,
)
from tributary_shared.core.ports import WorkflowStore
from tributary_shared.core.recording import IncompleteRecord, PayloadParts

__all__ = ["read_calls"]

_BATCH = 200
"""Log entries read per round trip."""

_RECORD_TYPES = CALL_RECORD_TYPES - {"call.payload"}
"""The records themselves; their parts are joined to them."""


async def read_calls(
    store: WorkflowStore,
    workflow_id: str,
    *,
    after: str = "0",
    limit: int = 100,
    step_id: str | None = None,
) -> tuple[list[LLMCalled | ToolCalled], str | None]:
    """Up to ``limit`` calls logged after position ``after`` (of step ``step_id`` only,
    when given), and the position to read the next page after (None: none logged yet)."""
    calls: list[LLMCalled | ToolCalled] = []
    parts = PayloadParts()
    position = after
    while True:
        entries = await store.read_log(workflow_id, after=position, count=_BATCH)
        for entry in entries:
            position = entry.stream_id
            if entry.type == "call.payload":
                event = decode_event(entry.event_json)
                assert isinstance(event, CallPayload)
                parts.add(event)
            elif entry.type in _RECORD_TYPES:
                record = decode_event(entry.event_json)
                assert isinstance(record, LLMCalled | ToolCalled)
                if step_id is not None and record.step_id != step_id:
                    continue
                # Parts that lie before ``after`` are not joined: the record names them.
                with contextlib.suppress(IncompleteRecord):
                    record = parts.join(record)
                calls.append(record)
                if len(calls) == limit:
                    return calls, position
        if len(entries) < _BATCH:
            return calls, None
