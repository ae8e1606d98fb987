"""A stand-in for the services' call recording, for tests of what reads it.

``RecordingLLM`` wraps a completion client and ``recording_tools`` a tool
registry; each call made through them becomes an ``llm.called`` or
``tool.called`` record as the services write them: one per logical call, in
its scope's sequence, with the whole request and the response or error, and a
tool's result as the model saw it (a tool error as its JSON error object).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tributary_agent_runner.tools.registry import Tool, ToolError, ToolRegistry
from tributary_shared.core.completions import (
    CallContext,
    Completion,
    Message,
    Role,
    WaitListener,
)
from tributary_shared.core.errors import TributaryError
from tributary_shared.core.events import (
    LLMCallBody,
    LLMCalled,
    LLMRequestRecord,
    LLMResponseRecord,
    RecordedToolCall,
    ToolCallBody,
    ToolCalled,
    utc_now,
)
from tributary_shared.runtime.llm.metered import CompletionClient
from tributary_shared.runtime.logs import step_id_var


@dataclass
class CallRecords:
    records: list[LLMCalled | ToolCalled] = field(default_factory=list)
    _sequences: dict[tuple[str, str, str, int], int] = field(default_factory=dict)
    workflow_id: str = ""
    tenant_id: str = "default"

    def next_sequence(self, kind: str, role: str, step_id: str, attempt: int) -> int:
        key = (kind, role, step_id, attempt)
        self._sequences[key] = self._sequences.get(key, 0) + 1
        return self._sequences[key]


class RecordingLLM:
    def __init__(self, inner: CompletionClient, records: CallRecords) -> None:
        self._inner = inner
        self._records = records

    async def complete(
        self,
        *,
        role: Role,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
        models: Sequence[str] | None = None,
        max_tokens: int | None = None,
        context: CallContext | None = None,
        on_wait: WaitListener | None = None,
    ) -> Completion:
        assert context is not None
        started = utc_now()
        request = LLMRequestRecord(
            messages=tuple(json.loads(json.dumps(list(messages)))),
            tools=tuple(tools or ()),
            response_format=response_format,
            models=tuple(models or ()),
            max_tokens=max_tokens,
        )
        common: dict[str, Any] = {
            "workflow_id": context.workflow_id,
            "tenant_id": context.tenant_id,
            "role": role,
            "step_id": context.step_id,
            "attempt": context.attempt,
            "iteration": context.iteration,
            "sequence": self._records.next_sequence(
                "llm", role, context.step_id or "", context.attempt
            ),
            "started_at": started,
            "duration_ms": 1,
        }
        try:
            completion = await self._inner.complete(
                role=role,
                messages=messages,
                tools=tools,
                response_format=response_format,
                models=models,
                max_tokens=max_tokens,
                context=context,
                on_wait=on_wait,
            )
        except TributaryError as error:
            body = LLMCallBody(request=request)
            self._records.records.append(LLMCalled(**common, error=error.to_info(), body=body))
            raise
        response = LLMResponseRecord(
            content=completion.content,
            tool_calls=tuple(
                RecordedToolCall(id=c.id, name=c.name, arguments=c.arguments)
                for c in completion.tool_calls
            ),
            finish_reason=completion.finish_reason,
            model=completion.model,
            deployment=completion.deployment,
            usage=completion.usage,
        )
        body = LLMCallBody(request=request, response=response)
        self._records.records.append(LLMCalled(**common, body=body))
        return completion

    async def close(self) -> None:
        await self._inner.close()


@dataclass(frozen=True, slots=True)
class _RecordedTool(Tool[Any]):
    real: Tool[Any] | None = None
    records: CallRecords | None = None

    async def invoke(self, raw_json: str) -> str:
        assert self.real is not None
        assert self.records is not None
        step_id = step_id_var.get() or ""
        failed = False
        try:
            result = await self.real.invoke(raw_json)
        except ToolError as error:
            failed = True
            result = json.dumps({"error": str(error)})
            raise
        except Exception:
            failed = True
            result = json.dumps({"error": f"{self.name} failed unexpectedly"})
            raise
        finally:
            self.records.records.append(
                ToolCalled(
                    workflow_id=self.records.workflow_id,
                    tenant_id=self.records.tenant_id,
                    role="agent",
                    step_id=step_id,
                    attempt=1,
                    sequence=self.records.next_sequence("tool", "agent", step_id, 1),
                    started_at=utc_now(),
                    duration_ms=1,
                    call_id=f"call_{len(self.records.records)}",
                    name=self.name,
                    failed=failed,
                    body=ToolCallBody(arguments=raw_json, result=result),
                )
            )
        return result


def recording_tools(tools: Sequence[Tool[Any]], records: CallRecords) -> ToolRegistry:
    return ToolRegistry(
        _RecordedTool(
            name=tool.name,
            description=tool.description,
            args_model=tool.args_model,
            run=tool.run,
            timeout_s=tool.timeout_s,
            read_only=tool.read_only,
            parameters=tool.parameters,
            real=tool,
            records=records,
        )
        for tool in tools
    )
