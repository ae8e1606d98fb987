"""Events as a workflow's stream delivers them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tributary_client._models import TokenDelta

__all__ = ["LIVE_EVENT_TYPES", "TERMINAL_EVENT_TYPES", "WorkflowEvent"]

TERMINAL_EVENT_TYPES = frozenset({"workflow.completed", "workflow.failed", "workflow.cancelled"})
"""The stream ends after one of these: the workflow has ended."""
LIVE_EVENT_TYPES = frozenset({"llm.delta"})
"""Sent live (``mode="tokens"``), not from the log: no ``id``, never sent again."""


@dataclass(frozen=True, slots=True)
class WorkflowEvent:
    """One event of a workflow.

    ``id`` is its position in the workflow's log: pass it as ``last_event_id``
    to resume a stream after it; empty for a live event (``live``), which has
    none. ``data`` is the event as JSON (its
    ``event_id``, ``occurred_at`` and the fields of its ``type``; see the
    API's event contract).
    """

    type: str
    id: str
    data: dict[str, Any] = field(repr=False)

    @property
    def terminal(self) -> bool:
        """True for the workflow's last event (completed, failed or cancelled)."""
        return self.type in TERMINAL_EVENT_TYPES

    @property
    def live(self) -> bool:
        """True for a live event (a token delta): not in the log, no position."""
        return self.type in LIVE_EVENT_TYPES

    def token_delta(self) -> TokenDelta | None:
        """The typed delta of an ``llm.delta`` event; None for any other event."""
        return TokenDelta.model_validate(self.data) if self.type == "llm.delta" else None

    @classmethod
    def decode(cls, *, event: str, id: str, data: str) -> WorkflowEvent:
        loaded = json.loads(data) if data else {}
        kind = event or "message"
        # An event without an id keeps the stream's last one (the SSE rule): a live
        # event has no position of its own.
        position = "" if kind in LIVE_EVENT_TYPES else id
        return cls(type=kind, id=position, data=loaded if isinstance(loaded, dict) else {})
