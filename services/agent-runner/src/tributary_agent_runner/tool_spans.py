"""The ``execute_tool`` span around each tool call the agent loop makes.

A tool's failure is no error of the step (it goes back to the model), so it
raises nothing here: the span is marked failed from the loop's verdict, with
the class the error table gives it (``model`` for arguments that fail
validation, ``tool`` for the rest).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol, TypeVar

from tributary_shared.core.completions import ToolCall
from tributary_shared.core.errors import ErrorClass
from tributary_shared.runtime.tracing import mark_failed, tool_call_span

__all__ = ["ToolVerdict", "traced_tool_call"]


class ToolVerdict(Protocol):
    """What the loop makes of a call."""

    @property
    def failed(self) -> bool: ...

    @property
    def invalid(self) -> bool:
        """The model's arguments did not fit the tool's schema."""
        ...


VerdictT = TypeVar("VerdictT", bound=ToolVerdict)


async def traced_tool_call(call: ToolCall, run: Awaitable[VerdictT]) -> VerdictT:
    with tool_call_span(call.name, call_id=call.id) as span:
        verdict = await run
        if verdict.invalid:
            mark_failed(span, error_type="tool_arguments_invalid", error_class=ErrorClass.MODEL)
        elif verdict.failed:
            mark_failed(span, error_type="tool_failed", error_class=ErrorClass.TOOL)
    return verdict
