"""Records a scope's LLM and tool calls as events of its workflow.

One recorder serves one scope (the planning of a workflow, one attempt of one
step, or the synthesis): it numbers the calls of each kind from 1 and stores
only the messages a call adds to the previous one (``core.recording``). The
record goes out through ``Record``, which the worker makes write it to the
workflow's log (and the outbox) in one round trip and hand it to the process's
``RecordSender``, which publishes it behind the call (``runtime.worker.workflow_llms``).

A record that cannot go out does not fail the call: the worker's ports wait
out a Redis or Kafka outage already, so what still fails is logged, and the
workflow goes on with a gap in its record rather than a failed step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from tributary_shared.core.completions import Completion, Message, Role, ToolCall
from tributary_shared.core.errors import TributaryError
from tributary_shared.core.events import (
    LLMCallBody,
    LLMCalled,
    LLMRequestRecord,
    LLMResponseRecord,
    LLMTry,
    RecordedToolCall,
    ToolCallBody,
    ToolCalled,
    ToolOutcome,
)
from tributary_shared.core.recording import kept_prefix

__all__ = ["CallRecorder", "Record"]

log = logging.getLogger(__name__)

Record = Callable[[LLMCalled | ToolCalled], Awaitable[None]]
"""Writes a call record to its workflow's log; its publish may follow later."""


class CallRecorder:
    def __init__(
        self,
        record: Record,
        *,
        workflow_id: str,
        tenant_id: str,
        step_id: str | None = None,
        attempt: int = 1,
    ) -> None:
        self._record = record
        self._workflow_id = workflow_id
        self._tenant_id = tenant_id
        self._step_id = step_id
        self._attempt = attempt
        self._llm_calls: dict[Role, int] = {}
        self._tool_calls = 0
        self._last_messages: dict[Role, tuple[Message, ...]] = {}

    async def llm_call(
        self,
        *,
        role: Role,
        iteration: int | None,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] | None,
        response_format: dict[str, Any] | None,
        models: Sequence[str],
        max_tokens: int | None,
        started_at: float,
        completion: Completion | None,
        error: TributaryError | None,
        tries: Sequence[LLMTry],
    ) -> None:
        """Record one LLM call that returned ``completion`` or raised ``error``."""
        sequence = self._llm_calls.get(role, 0) + 1
        self._llm_calls[role] = sequence
        sent = tuple(messages)
        kept = kept_prefix(self._last_messages.get(role, ()), sent)
        self._last_messages[role] = sent
        request = LLMRequestRecord(
            messages=sent[kept:],
            messages_kept=kept,
            tools=tuple(tools or ()),
            response_format=response_format,
            models=tuple(models),
            max_tokens=max_tokens,
        )
        response = None
        if completion is not None:
            response = LLMResponseRecord(
                content=completion.content,
                tool_calls=tuple(
                    RecordedToolCall(id=call.id, name=call.name, arguments=call.arguments)
                    for call in completion.tool_calls
                ),
                finish_reason=completion.finish_reason,
                model=completion.model,
                deployment=completion.deployment,
                usage=completion.usage,
            )
        await self._send(
            LLMCalled(
                **self._where(role, iteration, sequence, started_at, error),
                body=LLMCallBody(request=request, response=response),
                tries=tuple(tries),
            )
        )

    async def tool_call(
        self,
        *,
        iteration: int | None,
        call: ToolCall,
        result: str,
        failed: bool,
        outcome: ToolOutcome,
        started_at: float,
    ) -> None:
        """Record one tool call of an agent and what went back to the model."""
        self._tool_calls += 1
        await self._send(
            ToolCalled(
                **self._where("agent", iteration, self._tool_calls, started_at, None),
                call_id=call.id,
                name=call.name,
                outcome=outcome,
                failed=failed,
                body=ToolCallBody(arguments=call.arguments, result=result),
            )
        )

    def _where(
        self,
        role: Role,
        iteration: int | None,
        sequence: int,
        started_at: float,
        error: TributaryError | None,
    ) -> dict[str, Any]:
        return {
            "workflow_id": self._workflow_id,
            "tenant_id": self._tenant_id,
            "role": role,
            "step_id": self._step_id,
            "attempt": self._attempt,
            "iteration": iteration,
            "sequence": sequence,
            "started_at": datetime.fromtimestamp(started_at, UTC),
            "duration_ms": max(0, round((time.time() - started_at) * 1000)),
            "error": error.to_info() if error is not None else None,
        }

    async def _send(self, record: LLMCalled | ToolCalled) -> None:
        try:
            await self._record(record)
        except Exception:
            log.warning(
                "a %s record could not be written; the call stands",
                record.type,
                exc_info=True,
                extra={"step_id": self._step_id},
            )
