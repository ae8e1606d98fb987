"""Events as a workflow's stream delivers them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TERMINAL_EVENT_TYPES", "WorkflowEvent"]

TERMINAL_EVENT_TYPES = frozenset({"workflow.completed", "workflow.failed", "workflow.cancelled"})
"""The stream ends after one of these: the workflow has ended."""


@dataclass(frozen=True, slots=True)
class WorkflowEvent:
    """One event of a workflow.

    ``id`` is its position in the workflow's log: pass it as ``last_event_id``
    to resume a stream after it. ``data`` is the event as JSON (its
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

    @classmethod
    def decode(cls, *, event: str, id: str, data: str) -> WorkflowEvent:
        loaded = json.loads(data) if data else {}
        return cls(type=event or "message", id=id, data=loaded if isinstance(loaded, dict) else {})
