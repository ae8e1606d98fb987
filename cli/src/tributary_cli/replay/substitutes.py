"""The model and the tools of a rerun: the recording answers instead of them.

``ReplayingLLM`` is the ``CompletionClient`` the rerun's budgeted, routed LLM
access (``runtime.worker.workflow_llms``) calls. For each call it finds the
recorded call of the same (role, step, sequence), compares what is asked (the
whole conversation, the tools offered, the response format) and answers with
the recorded response, or raises the recorded error. ``replaying_tools`` wraps
each tool of the agent-runner's registry so that its schema is the real one but
a call returns the recorded result of the same call of the step.

The first difference stops the rerun: ``Diverged`` is raised, a BaseException
so that no ``except Exception`` of the services' code takes it for an error of
the workflow. Steps named live (``--live-from``) and, with them, the synthesis
call the configured model and run the tools for real instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tributary_agent_runner.tools.registry import Tool, ToolError, ToolRegistry
from tributary_cli.replay.recorded import (
    ASK_HUMAN,
    CallKey,
    RecordedLLMCall,
    RecordedToolCall,
    Recording,
)
from tributary_cli.replay.report import Divergence, render_json, render_messages, unified_diff
from tributary_shared.core.completions import (
    CallContext,
    Completion,
    DeltaListener,
    Message,
    Role,
    ToolCall,
    TryListener,
    WaitListener,
)
from tributary_shared.core.errors import (
    BudgetExceeded,
    BudgetNotOpened,
    DeadlineExceeded,
    FatalError,
    LogicError,
    ModelError,
    TransientError,
    TributaryError,
)
from tributary_shared.core.events import ErrorInfo
from tributary_shared.runtime.llm.metered import CompletionClient
from tributary_shared.runtime.logs import step_id_var

__all__ = [
    "Diverged",
    "ReplayingLLM",
    "RerunState",
    "error_from",
    "replaying_tools",
]

_BUDGET_REFUSALS = frozenset({"budget_exhausted", "budget_busy", "budget_not_opened"})
"""A call the budget refused never reached a model; the rerun's ledger refuses it again."""


class Diverged(BaseException):
    """The rerun did something the recording did not: it stops here."""

    def __init__(self, divergence: Divergence) -> None:
        super().__init__(f"{divergence.kind} at {divergence.where()}")
        self.divergence = divergence


@dataclass
class RerunState:
    """What the substitutes share: the recording, what was used of it, and counts."""

    recording: Recording
    live_steps: frozenset[str] = frozenset()
    live_synthesis: bool = False
    redact: Callable[[Any], Any] = field(default=lambda value: value)
    """Masks secrets in decoded JSON (``Redactor.json``): the recording was redacted."""
    divergence: Divergence | None = None
    llm_calls_replayed: int = 0
    llm_calls_live: int = 0
    tool_calls_replayed: int = 0
    tool_calls_live: int = 0
    llm_used: dict[CallKey, int] = field(default_factory=dict)
    """Recorded LLM calls used (or passed over) so far, per (role, step)."""
    tools_used: dict[str, int] = field(default_factory=dict)
    last_iteration: dict[str, int | None] = field(default_factory=dict)

    def diverged(self, divergence: Divergence) -> Diverged:
        """The signal that stops the rerun, at the first divergence found."""
        if self.divergence is None:
            self.divergence = divergence
        return Diverged(self.divergence)

    def differed(
        self,
        *,
        role: str,
        step_id: str | None,
        iteration: int | None,
        kind: str,
        expected: str,
        actual: str,
        sequence: int | None = None,
    ) -> Diverged:
        """``diverged`` where the rerun did ``actual`` and the recording ``expected``,
        with the unified diff between the two."""
        return self.diverged(
            Divergence(
                role=role,
                step_id=step_id,
                iteration=iteration,
                kind=kind,
                expected=expected,
                actual=actual,
                diff=unified_diff(expected, actual),
                sequence=sequence,
            )
        )

    def is_live(self, role: str, step_id: str) -> bool:
        if role == "synthesizer":
            return self.live_synthesis
        return role == "agent" and step_id in self.live_steps

    # -- what the rerun did not do -------------------------------------------------------

    def missing_llm_call(self, role: str, step_id: str) -> Divergence | None:
        """A recorded LLM call of (role, step) the rerun never made, if any."""
        calls = self.recording.llm_calls.get((role, step_id), ())
        for call in calls[self.llm_used.get((role, step_id), 0) :]:
            if _refused_by_budget(call):
                continue
            expected = _render_call(call.messages)
            return Divergence(
                role=role,
                step_id=step_id or None,
                iteration=call.record.iteration,
                kind="missing call",
                expected=expected,
                actual="(the rerun made no such call)",
                diff=unified_diff(expected, ""),
                sequence=call.record.sequence,
            )
        return None

    def missing_tool_call(self, step_id: str) -> Divergence | None:
        """A recorded tool call of the step that ran and the rerun never made, if any."""
        calls = self.recording.tool_calls.get(step_id, ())
        for call in calls[self.tools_used.get(step_id, 0) :]:
            if _passable(call):
                continue
            expected = _render_tool_call(call.record.name, call.body.arguments)
            return Divergence(
                role="agent",
                step_id=step_id,
                iteration=call.record.iteration,
                kind="missing call",
                expected=expected,
                actual="(the rerun made no such tool call)",
                diff=unified_diff(expected, ""),
                sequence=call.record.sequence,
            )
        return None


def _refused_by_budget(call: RecordedLLMCall) -> bool:
    error = call.record.error
    return error is not None and error.code in _BUDGET_REFUSALS and not call.record.tries


def _passable(call: RecordedToolCall) -> bool:
    """A recorded tool call a rerun may not make: one that failed (an unknown tool or
    invalid arguments never reach the tool), or an effect an earlier attempt recorded."""
    return call.record.failed or call.record.outcome == "effect_recorded"


def _render_call(messages: Sequence[Message]) -> str:
    return render_messages(messages)


def _render_tool_call(name: str, arguments: str) -> str:
    return f"{name}({arguments})"


def _plain(value: Any) -> Any:
    """``value`` as JSON decodes it: lists for tuples, string keys."""
    return json.loads(json.dumps(value, default=str))


def error_from(info: ErrorInfo) -> TributaryError:
    """The error an ``ErrorInfo`` describes, as the class the code recovers by."""
    if info.code in ("budget_exhausted", "budget_busy"):
        return BudgetExceeded(info.message, busy=info.code == "budget_busy")
    if info.code == "budget_not_opened":
        return BudgetNotOpened(info.message)
    if info.code.endswith("deadline_exceeded"):
        return DeadlineExceeded(info.message, code=info.code)
    by_class: dict[str, type[TributaryError]] = {
        "transient": TransientError,
        "model": ModelError,
        "logic": LogicError,
        "fatal": FatalError,
    }
    return by_class.get(info.error_class, TributaryError)(info.message, code=info.code)


class ReplayingLLM:
    """A ``CompletionClient`` that answers from the recording (see the module)."""

    def __init__(self, state: RerunState, *, live: CompletionClient | None = None) -> None:
        self._state = state
        self._live = live
        self._closed = False

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
        on_try: TryListener | None = None,
        on_delta: DeltaListener | None = None,
        stream: bool | None = None,
    ) -> Completion:
        state = self._state
        step_id = (context.step_id if context is not None else None) or ""
        iteration = context.iteration if context is not None else None
        if step_id:
            state.last_iteration[step_id] = iteration
        if state.is_live(role, step_id):
            if self._live is None:
                raise FatalError("a live call was asked for without a live model", code="rerun")
            state.llm_calls_live += 1
            return await self._live.complete(
                role=role,
                messages=messages,
                tools=tools,
                response_format=response_format,
                models=models,
                max_tokens=max_tokens,
                context=context,
                on_wait=on_wait,
                on_try=on_try,
                on_delta=on_delta,
                stream=stream,
            )
        recorded = self._next_recorded((role, step_id))
        asked = {
            "messages": _plain(list(messages)),
            "tools": _plain(list(tools or ())),
            "response_format": _plain(response_format),
        }
        if recorded is None:
            actual = render_messages(asked["messages"])
            raise state.diverged(
                Divergence(
                    role=role,
                    step_id=step_id or None,
                    iteration=iteration,
                    kind="extra call",
                    expected="(no such call was recorded)",
                    actual=actual,
                    diff=unified_diff("", actual),
                    sequence=state.llm_used[(role, step_id)],
                )
            )
        self._compare(recorded, asked, role=role, step_id=step_id, iteration=iteration)
        state.llm_calls_replayed += 1
        if on_try is not None:
            for recorded_try in recorded.record.tries:  # the rerun's record says how it went
                on_try(recorded_try)
        return _answer(recorded)

    def _next_recorded(self, key: CallKey) -> RecordedLLMCall | None:
        """The next recorded call of (role, step) that reached a model."""
        calls = self._state.recording.llm_calls.get(key, ())
        used = self._state.llm_used.get(key, 0)
        while used < len(calls) and _refused_by_budget(calls[used]):
            used += 1
        self._state.llm_used[key] = used + 1
        return calls[used] if used < len(calls) else None

    def _compare(
        self,
        recorded: RecordedLLMCall,
        asked: dict[str, Any],
        *,
        role: str,
        step_id: str,
        iteration: int | None,
    ) -> None:
        redact = self._state.redact
        request = recorded.body.request
        expected: dict[str, Any] = {
            "messages": _plain(list(recorded.messages)),
            "tools": _plain(list(request.tools)),
            "response_format": _plain(request.response_format),
        }
        for part, kind in (
            ("messages", "prompt"),
            ("tools", "tools offered"),
            ("response_format", "response format"),
        ):
            if redact(expected[part]) == redact(asked[part]):
                continue
            if part == "messages":
                answered = _resumed_otherwise(expected[part], asked[part], redact)
                if answered is not None:
                    kind = "answer"  # the paused step resumed with another answer
                    before, after = answered
                else:
                    before, after = render_messages(expected[part]), render_messages(asked[part])
                if before == after:  # a difference the readable form hides
                    before, after = render_json(expected[part]), render_json(asked[part])
            else:
                before, after = render_json(expected[part]), render_json(asked[part])
            raise self._state.differed(
                role=role,
                step_id=step_id or None,
                iteration=iteration if iteration is not None else recorded.record.iteration,
                kind=kind,
                expected=before,
                actual=after,
                sequence=recorded.record.sequence,
            )

    async def close(self) -> None:
        if self._live is not None and not self._closed:
            self._closed = True
            await self._live.close()


def _resumed_otherwise(
    expected: list[dict[str, Any]], asked: list[dict[str, Any]], redact: Callable[[Any], Any]
) -> tuple[str, str] | None:
    """The recorded and the rerun's answer to an ``ask_human`` call, when that is the
    first message in which the two conversations differ; None otherwise."""
    for index, (before, after) in enumerate(zip(expected, asked, strict=False)):
        if redact(before) == redact(after):
            continue
        call_id = before.get("tool_call_id")
        if before.get("role") != "tool" or call_id != after.get("tool_call_id"):
            return None
        if _called_tool(expected[:index], call_id) != ASK_HUMAN:
            return None
        answer_of = "ask_human [{}]: {}".format
        return answer_of(call_id, before.get("content")), answer_of(call_id, after.get("content"))
    return None


def _called_tool(messages: Sequence[dict[str, Any]], call_id: Any) -> str | None:
    """The name of the tool the call ``call_id`` in ``messages`` called."""
    for message in reversed(messages):
        for call in message.get("tool_calls") or ():
            if isinstance(call, dict) and call.get("id") == call_id:
                name = (call.get("function") or {}).get("name")
                return name if isinstance(name, str) else None
    return None


def _answer(recorded: RecordedLLMCall) -> Completion:
    response = recorded.body.response
    error = recorded.record.error
    if error is not None or response is None:
        missing = ErrorInfo(
            code="internal_error", message="no response was recorded", error_class="internal"
        )
        raise error_from(error or missing)
    return Completion(
        content=response.content,
        tool_calls=tuple(ToolCall(c.id, c.name, c.arguments) for c in response.tool_calls),
        finish_reason=response.finish_reason,
        model=response.model,
        usage=response.usage,
        deployment=response.deployment,
    )


# -- tools ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _SubstitutedTool(Tool[Any]):
    """A tool with its real name, schema and argument checks, called through the rerun."""

    real: Tool[Any] | None = None
    replay: _ToolReplay | None = None

    async def invoke(self, raw_json: str) -> str:
        assert self.real is not None
        assert self.replay is not None
        return await self.replay.invoke(self.real, raw_json)


class _ToolReplay:
    def __init__(self, state: RerunState) -> None:
        self._state = state

    async def invoke(self, real: Tool[Any], raw_json: str) -> str:
        state = self._state
        step_id = step_id_var.get() or ""
        if state.is_live("agent", step_id):
            state.tool_calls_live += 1
            return await real.invoke(raw_json)
        recorded = self._take(step_id, real.name, raw_json)
        state.tool_calls_replayed += 1
        real.parse_arguments(raw_json)  # arguments that fail now fail as they would
        result = recorded.body.result
        message = _error_message(result) if recorded.record.failed else None
        if message is not None:
            raise ToolError(message)
        return result

    def _take(self, step_id: str, name: str, arguments: str) -> RecordedToolCall:
        """The recorded call this one stands for: the next one of the step with this name
        and these arguments, passing over recorded calls that a rerun does not make."""
        state = self._state
        calls = state.recording.tool_calls.get(step_id, ())
        used = state.tools_used.get(step_id, 0)
        for index in range(used, len(calls)):
            call = calls[index]
            if call.record.name == name and call.body.arguments == arguments:
                state.tools_used[step_id] = index + 1
                return call
            if not _passable(call):
                break
        actual = _render_tool_call(name, arguments)
        next_call = next((c for c in calls[used:] if not _passable(c)), None)
        expected = (
            _render_tool_call(next_call.record.name, next_call.body.arguments)
            if next_call is not None
            else "(no such tool call was recorded)"
        )
        raise state.differed(
            role="agent",
            step_id=step_id or None,
            iteration=state.last_iteration.get(step_id),
            kind="tool call",
            expected=expected,
            actual=actual,
            sequence=next_call.record.sequence if next_call is not None else None,
        )


def _error_message(result: str) -> str | None:
    """The message of a recorded tool error (``{"error": message}``), so that raising it
    again gives the model the same text; None for a result of another shape."""
    try:
        decoded = json.loads(result)
    except ValueError:
        return None
    if isinstance(decoded, dict) and isinstance(decoded.get("error"), str):
        message: str = decoded["error"]
        return message
    return None


def replaying_tools(real: ToolRegistry, state: RerunState) -> ToolRegistry:
    """``real``'s tools, in the order they are offered, each answered by the recording
    (or run for real in a live step)."""
    replay = _ToolReplay(state)
    offered = [schema["function"]["name"] for schema in real.openai_schemas()]
    return ToolRegistry(
        _SubstitutedTool(
            name=tool.name,
            description=tool.description,
            args_model=tool.args_model,
            run=tool.run,
            timeout_s=tool.timeout_s,
            read_only=tool.read_only,
            parameters=tool.parameters,
            real=tool,
            replay=replay,
        )
        for tool in map(real.get, offered)
    )
