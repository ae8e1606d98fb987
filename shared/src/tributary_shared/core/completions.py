"""The values an LLM call takes and returns, apart from the client that makes it.

The client, structured output, the planner's and synthesizer's prompt logic
and the agent loop all speak these; in the core, they import no SDK.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from tributary_shared.core.errors import TributaryError
from tributary_shared.core.events import LLMTry, TokenUsage

__all__ = [
    "CallContext",
    "Completion",
    "DeltaListener",
    "Message",
    "ModelWait",
    "Role",
    "ToolCall",
    "TryListener",
    "WaitListener",
]

Role = Literal["planner", "agent", "synthesizer"]
Message = dict[str, Any]
"""One chat message in the OpenAI wire shape."""


@dataclass(frozen=True)
class CallContext:
    """The workflow an LLM call is made for.

    The client waits out a failing endpoint for as long as this workflow's
    deadline allows (``deadline_at``, epoch seconds; None: no deadline is
    known), and tells the workflow that it is waiting.
    """

    workflow_id: str
    tenant_id: str
    deadline_at: float | None = None
    step_id: str | None = None
    """The step an agent's call works on (None: the planner's or synthesizer's)."""
    attempt: int = 1
    """The step's attempt (1 outside steps)."""
    iteration: int | None = None
    """The agent loop's iteration the call belongs to."""


@dataclass(frozen=True)
class ModelWait:
    """An LLM call is waiting for its model: what failed last, and when it tries again,
    or that its deployment's admission gate holds it."""

    model: str
    """The model name the call asked for (not the provider's id for it)."""
    deployment: str
    """The deployment whose try failed, or whose gate holds the call."""
    error: TributaryError | None
    """Why the last try failed; None when none has (the gate holds the first)."""
    attempt: int
    """Tries the call has made so far, on every deployment."""
    waiting_since: float
    """When the call began to wait (epoch seconds): its first failure, or its turn."""
    next_try_at: float | None
    """When it tries again (epoch seconds); None: when the deployment's gate lets it
    (its circuit breaker open, its rate limit reached)."""


WaitListener = Callable[[ModelWait], Awaitable[bool]]
"""Told when a call starts waiting for its model, and now and then while it waits;
returns False when the call is no longer wanted (its workflow has ended): it stops."""


TryListener = Callable[[LLMTry], None]
"""Told of every HTTP attempt of a call, as it ends: where it went, how long it took,
and why it failed (the call's record lists them)."""


DeltaListener = Callable[[str], Awaitable[None] | None]
"""Told each piece of a streamed completion's text as it arrives (plain or async);
the pieces, joined, are the completion's content. Streamed calls only
(``TRIBUTARY_LLM_STREAM``); a try that fails after some pieces is tried again from
the start, so a listener may hear the same text again."""


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Completion:
    content: str | None
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str
    model: str
    usage: TokenUsage = field(default_factory=TokenUsage)
    deployment: str | None = None
    """The deployment that served the completion (None: not known)."""

    def as_assistant_message(self) -> Message:
        message: Message = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in self.tool_calls
            ]
        return message
