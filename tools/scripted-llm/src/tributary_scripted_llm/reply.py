"""The assistant message the server is about to send, independent of wire format.

Both the automatic behaviour and scripted responses produce a :class:`Reply`; the
renderer then turns it into a ``chat.completion`` object or a stream of chunks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .models import FinishReason


@dataclass(slots=True)
class ToolCall:
    name: str
    arguments: str
    """JSON text, passed through verbatim (it may be deliberately malformed)."""
    id: str | None = None


@dataclass(slots=True)
class Reply:
    content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    refusal: str | None = None
    finish_reason: FinishReason | None = None
    """None means: ``tool_calls`` when there are tool calls, else ``stop``."""

    @property
    def effective_finish_reason(self) -> FinishReason:
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"
