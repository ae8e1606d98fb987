"""A workflow's progress as its event stream tells it (pure: no I/O, no terminal).

``RunProgress.apply`` folds one event into the state a display shows (the plan,
each step's state and attempt, tool calls, tokens, the text its LLM calls are
writing) and returns the one line that tells the event in plain text, or None
for an event not worth a line (a ``call.payload`` part, a live ``llm.delta``).
``apply_workflow`` adds what only the workflow's state has: cost and budget.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tributary_client import Workflow, WorkflowEvent

__all__ = [
    "InputRequest",
    "RunProgress",
    "StepProgress",
    "shorten",
]

_RECENT = 6
"""Tool calls and other activity the live view keeps in sight."""
_WRITING_KEPT = 400
"""The end of a call's live text the view keeps (it shows the last of it)."""


def shorten(text: str, width: int = 100) -> str:
    """One line of at most ``width`` characters: newlines folded, the rest cut with '…'."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


@dataclass
class StepProgress:
    step_id: str
    index: int
    title: str
    state: str = "pending"
    """pending, running, completed or failed."""
    attempt: int = 1
    tokens: int = 0
    detail: str = ""
    """What it did last: a tool call, its result, its error, or the text its model is
    writing now."""


@dataclass(frozen=True)
class InputRequest:
    """A workflow's question to a person (``input.requested``); answered by its id."""

    request_id: str
    question: str
    step_id: str | None = None
    choices: tuple[str, ...] = ()
    expires_at: str | None = None

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> InputRequest:
        choices = data.get("choices") or ()
        return cls(
            request_id=str(data.get("request_id", "")),
            question=str(data.get("question", "")),
            step_id=_optional(data.get("step_id")),
            choices=tuple(str(choice) for choice in choices),
            expires_at=_optional(data.get("expires_at")),
        )


@dataclass
class RunProgress:
    workflow_id: str
    task: str = ""
    status: str = "pending"
    steps: dict[str, StepProgress] = field(default_factory=dict)
    tokens: int = 0
    """Tokens of the LLM calls seen so far (the final usage replaces it at the end)."""
    cost_usd: float | None = None
    cost_limit_usd: float | None = None
    token_limit: int | None = None
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=_RECENT))
    waiting_for: InputRequest | None = None
    result: str | None = None
    partial: bool = False
    error: str | None = None
    drafting: str = ""
    """The end of the answer the synthesizer is writing now (live deltas)."""
    _writing: dict[str | None, tuple[tuple[Any, ...], str]] = field(default_factory=dict)
    """Per step (None: the synthesis): the call being streamed and its text's end."""

    def apply(self, event: WorkflowEvent) -> str | None:
        """Fold ``event`` in; the plain line that tells it, or None."""
        summary = self._fold(event.type, event.data)
        if summary is None:
            return None
        return f"{event.type:<19} {summary}"

    def apply_workflow(self, workflow: Workflow) -> None:
        """What the workflow's state adds: its status, cost, budget and final usage."""
        self.status = str(workflow.status)
        self.task = workflow.task
        if workflow.budget is not None:
            self.cost_usd = workflow.budget.used_cost_usd
            self.cost_limit_usd = workflow.budget.limit_cost_usd
            self.token_limit = workflow.budget.limit_tokens
        self.tokens = max(self.tokens, workflow.usage.total_tokens)
        for step in workflow.steps:
            known = self._step(step.step_id, index=step.index, title=step.title)
            known.state = str(step.status) if step.status != "waiting" else "pending"
            known.attempt = step.attempt
            known.tokens = max(known.tokens, step.usage.total_tokens)
        if workflow.terminal:
            self.result = workflow.result
            self.partial = workflow.partial
            if workflow.error is not None:
                self.error = f"{workflow.error.code}: {workflow.error.message}"

    def step_label(self, step_id: str | None) -> str:
        step = self.steps.get(step_id or "")
        if step is None or not step.title:  # a step the plan did not show (yet)
            return step_id or "-"
        return f"{step.index + 1}. {step.title}"

    # -- one event --------------------------------------------------------------------

    def _fold(self, event_type: str, data: Mapping[str, Any]) -> str | None:
        match event_type:
            case "workflow.requested":
                self.task = str(data.get("task", ""))
                return shorten(self.task)
            case "plan.created":
                self.status = "running"
                for planned in data.get("steps") or []:
                    if isinstance(planned, Mapping):
                        self._planned(planned)
                titles = "; ".join(step.title for step in self.steps.values())
                return shorten(f"{len(self.steps)} steps: {titles}")
            case "step.dispatched":
                planned = data.get("step")
                if isinstance(planned, Mapping):
                    step = self._planned(planned)
                    return self.step_label(step.step_id)
                return None
            case "step.started":
                step = self._step(str(data.get("step_id")))
                step.state, step.attempt = "running", int(data.get("attempt", 1))
                return f"{self.step_label(step.step_id)} (attempt {step.attempt})"
            case "step.completed":
                step = self._step(str(data.get("step_id")))
                step.state, step.attempt = "completed", int(data.get("attempt", step.attempt))
                step.tokens = max(step.tokens, _tokens(data.get("usage")))
                step.detail = shorten(str(data.get("result", "")), 80)
                return f"{self.step_label(step.step_id)} -> {step.detail}"
            case "step.failed":
                step = self._step(str(data.get("step_id")))
                step.state, step.attempt = "failed", int(data.get("attempt", step.attempt))
                step.detail = _error(data.get("error"))
                return f"{self.step_label(step.step_id)} failed: {step.detail}"
            case "synthesis.started":
                self.status = "synthesizing"
                return "combining the step results"
            case "llm.waiting":
                return self._llm_waiting(data)
            case "llm.called":
                return self._llm_called(data)
            case "tool.called":
                return self._tool_called(data)
            case "call.payload":
                return None  # a part of a large call record; the record follows
            case "llm.delta":
                self._delta(data)
                return None  # a few words: shown live, not worth a line each
            case "input.requested":
                self.waiting_for = InputRequest.of(data)
                if self.waiting_for.step_id in self.steps:
                    step = self.steps[self.waiting_for.step_id]
                    step.state, step.detail = (
                        "awaiting_input",
                        shorten(self.waiting_for.question, 80),
                    )
                return self._input_line(self.waiting_for)
            case "input.answered":
                return self._input_answered(data)
            case "budget.exhausted":
                used, limit = data.get("used_tokens"), data.get("limit_tokens")
                return f"{used} of {limit} tokens used (then: {data.get('policy', 'partial')})"
            case "workflow.completed":
                self.status = "completed"
                self.result = str(data.get("result", ""))
                self.partial = bool(data.get("partial"))
                self.tokens = max(self.tokens, _tokens(data.get("usage")))
                return ("partial " if self.partial else "") + "answer ready"
            case "workflow.failed":
                self.status = "failed"
                self.error = _error(data.get("error"))
                return self.error
            case "workflow.cancelled":
                self.status = "cancelled"
                self.error = str(data.get("reason", "cancelled"))
                return self.error
        fields = {k: v for k, v in data.items() if k not in _ENVELOPE}
        return shorten(json.dumps(fields, default=str))

    def _input_answered(self, data: Mapping[str, Any]) -> str:
        request_id = str(data.get("request_id", ""))
        if self.waiting_for is not None and self.waiting_for.request_id == request_id:
            self.waiting_for = None
        step_id = _optional(data.get("step_id"))
        if step_id in self.steps and self.steps[step_id].state == "awaiting_input":
            # Dispatched again: it resumes where it stopped once a runner takes it.
            self.steps[step_id].state = "pending"
        answer = shorten(str(data.get("answer", "")), 60)
        return f"{request_id}: {answer!r} (from {data.get('source', '?')})"

    def _llm_waiting(self, data: Mapping[str, Any]) -> str:
        step_id = _optional(data.get("step_id"))
        who = self.step_label(step_id) if step_id else str(data.get("role", "?"))
        where = f"{data.get('model', '?')} at {data.get('deployment', '?')}"
        why = _error(data.get("error")) if data.get("error") else "its turn at the gate"
        next_try = data.get("next_try_at")
        when = f"next try {str(next_try)[11:19]}" if next_try else "next try when let"
        if step_id in self.steps:
            self.steps[step_id].detail = f"waiting for {where}"
        return shorten(f"{who} waiting for {where} ({why}); {when}", 120)

    def _llm_called(self, data: Mapping[str, Any]) -> str:
        body = _mapping(data.get("body"))
        response = _mapping(body.get("response"))
        tokens = _tokens(response.get("usage"))
        self.tokens += tokens
        step_id = _optional(data.get("step_id"))
        if step_id in self.steps:
            self.steps[step_id].tokens += tokens
        who = self.step_label(step_id) if step_id else str(data.get("role", "?"))
        model = response.get("model") or "?"
        error = data.get("error")
        outcome = f"failed: {_error(error)}" if error else f"{tokens} tokens"
        return f"{who}: {model}, {outcome} (total {self.tokens})"

    def _tool_called(self, data: Mapping[str, Any]) -> str:
        body = _mapping(data.get("body"))
        arguments = shorten(str(body.get("arguments", "")), 40)
        result = shorten(str(body.get("result", "")), 40)
        mark = " (failed)" if data.get("failed") else ""
        call = f"{data.get('name', '?')}({arguments}) -> {result}{mark}"
        step_id = _optional(data.get("step_id"))
        if step_id in self.steps:
            self.steps[step_id].detail = call
        line = f"{self.step_label(step_id)}: {call}"
        self.recent.append(line)
        return line

    def _delta(self, data: Mapping[str, Any]) -> None:
        step_id = _optional(data.get("step_id"))
        call = tuple(data.get(k) for k in ("attempt", "iteration", "call", "try_number"))
        known, text = self._writing.get(step_id, ((), ""))
        if known != call:  # another call, or the same one tried again: its text starts over
            text = ""
        text = (text + str(data.get("text", "")))[-_WRITING_KEPT:]
        self._writing[step_id] = (call, text)
        if step_id is None:
            self.drafting = text
        elif step_id in self.steps and self.steps[step_id].state == "running":
            self.steps[step_id].detail = "✎ " + " ".join(text.split())[-60:]

    @staticmethod
    def _input_line(request: InputRequest) -> str:
        choices = f" [{' / '.join(request.choices)}]" if request.choices else ""
        return f"{request.request_id}: {shorten(request.question)}{choices}"

    def _planned(self, planned: Mapping[str, Any]) -> StepProgress:
        return self._step(
            str(planned.get("step_id")),
            index=int(planned.get("index", len(self.steps))),
            title=str(planned.get("title", "")),
        )

    def _step(self, step_id: str, *, index: int | None = None, title: str = "") -> StepProgress:
        step = self.steps.get(step_id)
        if step is None:
            step = StepProgress(step_id, index if index is not None else len(self.steps), title)
            self.steps[step_id] = step
        elif title:
            step.title = title
        return step


_ENVELOPE = frozenset(
    {
        "event_id",
        "type",
        "schema_version",
        "workflow_id",
        "tenant_id",
        "occurred_at",
        "causation_id",
    }
)


def _tokens(usage: Any) -> int:
    if not isinstance(usage, Mapping):
        return 0
    if "total_tokens" in usage:
        return int(usage["total_tokens"])
    return int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0))


def _error(error: Any) -> str:
    if isinstance(error, Mapping):
        return shorten(f"{error.get('code', 'error')}: {error.get('message', '')}", 100)
    return "unknown error" if error is None else shorten(str(error), 100)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _optional(value: Any) -> str | None:
    return None if value is None else str(value)
