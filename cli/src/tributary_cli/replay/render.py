"""Showing a ``Timeline``: as text for a person, as JSON for a program.

The JSON structure is documented in docs/operations.md ("Replaying a workflow") and
stable: fields are only ever added; ``version`` is bumped for any other change.
Times are ISO 8601 in UTC; ``at_s`` is seconds since the workflow's first event.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from tributary_cli.replay.timeline import (
    Attempt,
    CallScopeView,
    CallView,
    InputView,
    StepView,
    Timeline,
)
from tributary_shared.core.events import (
    AnyEvent,
    ErrorInfo,
    LLMCalled,
    LLMTry,
    LLMWaiting,
    StepCompleted,
    ToolCalled,
    WorkflowCancelled,
    WorkflowCompleted,
)

__all__ = ["JSON_FORMAT", "JSON_VERSION", "SHORT_TEXT_CHARS", "as_json", "render_text"]

JSON_FORMAT = "tributary.timeline"
JSON_VERSION = 1
SHORT_TEXT_CHARS = 300
"""Longer texts are cut to this many characters in the text view unless asked whole."""


# --- JSON ------------------------------------------------------------------------------------


def as_json(timeline: Timeline) -> dict[str, Any]:
    """The timeline as plain data (see the module docstring)."""
    origin = timeline.events[0].occurred_at
    return {
        "format": JSON_FORMAT,
        "version": JSON_VERSION,
        "workflow_id": timeline.workflow_id,
        "tenant_id": timeline.tenant_id,
        "status": timeline.status,
        "started_at": _iso(origin),
        "ended_at": _iso(timeline.outcome.occurred_at) if timeline.outcome else None,
        "request": (
            {
                "at": _iso(timeline.request.occurred_at),
                "task": timeline.request.task,
                "options": timeline.request.options.model_dump(mode="json"),
            }
            if timeline.request
            else None
        ),
        "planning": _scope_json(timeline.planning),
        "plan": (
            {
                "at": _iso(timeline.plan.occurred_at),
                "steps": [step.model_dump(mode="json") for step in timeline.plan.steps],
                "inputs": [_input_json(view) for view in timeline.plan_inputs],
            }
            if timeline.plan
            else None
        ),
        "steps": [_step_json(step) for step in timeline.steps],
        "synthesis": {
            "started_at": _iso(timeline.synthesis_started.occurred_at)
            if timeline.synthesis_started
            else None,
            **_scope_json(timeline.synthesis),
        },
        "budget": {
            "token_budget": timeline.budget.token_budget,
            "cost_budget_usd": timeline.budget.cost_budget_usd,
            "used_tokens": timeline.budget.used_tokens,
            "used_source": timeline.budget.used_source,
            "recorded_calls_usage": _dump(timeline.budget.recorded_calls),
            "exhausted": _event_fields(timeline.budget.exhausted),
        },
        "cancel_requested": _event_fields(timeline.cancel_requested),
        "outcome": _event_fields(timeline.outcome),
        "events": [_event_entry(event, origin) for event in timeline.events],
        "problems": list(timeline.problems),
    }


def _iso(at: datetime) -> str:
    return at.isoformat()


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json") if model is not None else None


_ENVELOPE = ("event_id", "schema_version", "workflow_id", "tenant_id", "causation_id")


def _event_fields(event: AnyEvent | None) -> dict[str, Any] | None:
    """An event's own fields (its type and time kept, the rest of the envelope left out)."""
    if event is None:
        return None
    data: dict[str, Any] = event.model_dump(mode="json", exclude=set(_ENVELOPE))
    data["at"] = data.pop("occurred_at")
    return data


def _event_entry(event: AnyEvent, origin: datetime) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "at": _iso(event.occurred_at),
        "at_s": round((event.occurred_at - origin).total_seconds(), 3),
        "type": event.type,
        "event_id": event.event_id,
    }
    step_id = _step_of(event)
    if step_id is not None:
        entry["step_id"] = step_id
    return entry


def _step_of(event: AnyEvent) -> str | None:
    if event.type == "step.dispatched":
        return event.step.step_id
    step_id = getattr(event, "step_id", None)
    return step_id if isinstance(step_id, str) else None


def _scope_json(scope: CallScopeView) -> dict[str, Any]:
    return {
        "calls": [_call_json(view) for view in scope.calls],
        "waits": [_event_fields(wait) for wait in scope.waits],
    }


def _step_json(step: StepView) -> dict[str, Any]:
    outcome = step.outcome
    return {
        "step_id": step.step_id,
        "title": step.planned.title if step.planned else None,
        "index": step.planned.index if step.planned else None,
        "depends_on": list(step.planned.depends_on) if step.planned else [],
        "status": outcome.type.removeprefix("step.") if outcome else "unfinished",
        "dispatched_at": [_iso(event.occurred_at) for event in step.dispatched],
        "attempts": [_attempt_json(attempt) for attempt in step.attempts],
    }


def _attempt_json(attempt: Attempt) -> dict[str, Any]:
    return {
        "attempt": attempt.number,
        "started_at": _iso(attempt.started.occurred_at) if attempt.started else None,
        "outcome": _event_fields(attempt.outcome),
        "iterations": [
            {"iteration": iteration.number, "calls": [_call_json(c) for c in iteration.calls]}
            for iteration in attempt.iterations
        ],
        "waits": [_event_fields(wait) for wait in attempt.waits],
        "inputs": [_input_json(view) for view in attempt.inputs],
    }


def _input_json(view: InputView) -> dict[str, Any]:
    """A request for a person's input (its event's fields), the iteration that asked,
    and its answer (null while unanswered)."""
    data = _event_fields(view.requested)
    assert data is not None
    data["iteration"] = view.iteration
    answered = _event_fields(view.answered)
    data["answer"] = (
        {"at": answered["at"], "answer": answered["answer"], "source": answered["source"]}
        if answered is not None
        else None
    )
    return data


def _call_json(view: CallView) -> dict[str, Any]:
    record = view.record
    data: dict[str, Any] = {
        "kind": view.kind,
        "event_id": record.event_id,
        "sequence": record.sequence,
        "iteration": record.iteration,
        "started_at": _iso(record.started_at),
        "duration_ms": record.duration_ms,
        "error": _dump(record.error),
        "incomplete": view.incomplete,
    }
    if isinstance(record, LLMCalled):
        body = record.body
        data["request"] = (
            {**body.request.model_dump(mode="json"), "messages_total": view.messages_total}
            if body
            else None
        )
        data["response"] = _dump(body.response) if body else None
        data["tries"] = [attempt.model_dump(mode="json") for attempt in record.tries]
    else:
        data["call_id"] = record.call_id
        data["name"] = record.name
        data["outcome"] = record.outcome
        data["failed"] = record.failed
        data["arguments"] = record.body.arguments if record.body else None
        data["result"] = record.body.result if record.body else None
    return data


# --- text ------------------------------------------------------------------------------------


def render_text(timeline: Timeline, *, full: bool = False) -> str:
    """The timeline for reading; texts longer than ``SHORT_TEXT_CHARS`` are cut unless
    ``full``."""
    return "\n".join(_Text(timeline, full).lines()) + "\n"


class _Text:
    def __init__(self, timeline: Timeline, full: bool) -> None:
        self.timeline = timeline
        self.full = full
        self.origin = timeline.events[0].occurred_at
        self.out: list[str] = []

    def lines(self) -> list[str]:
        t = self.timeline
        self.say(0, f"Workflow {t.workflow_id} (tenant {t.tenant_id}): {t.status}")
        self.say(0, f"{len(t.events)} events")
        self.say(0, f"First event {t.events[0].occurred_at:%Y-%m-%d %H:%M:%S.%f %Z}".rstrip())
        self.request()
        self.section("Planning")
        self.scope(t.planning, 1)
        self.plan()
        for step in t.steps:
            self.step(step)
        self.section("Synthesis")
        if t.synthesis_started:
            self.say(1, f"{self.at(t.synthesis_started.occurred_at)} started")
        elif not t.synthesis.calls:
            self.say(1, "(not started)")
        self.scope(t.synthesis, 1)
        self.budget()
        self.outcome()
        if t.problems:
            self.section("Problems")
            for problem in t.problems:
                self.say(1, problem)
        return self.out

    # -- helpers

    def say(self, depth: int, text: str) -> None:
        self.out.append("  " * depth + text)

    def section(self, title: str) -> None:
        self.out.append("")
        self.out.append(title)

    def at(self, when: datetime) -> str:
        return f"+{(when - self.origin).total_seconds():.3f}s"

    def text(self, value: str | None) -> str:
        if value is None:
            return "(none)"
        if self.full:
            return value  # as it is, line breaks included
        flat = " ".join(value.split())
        if len(flat) <= SHORT_TEXT_CHARS:
            return json.dumps(flat, ensure_ascii=False)
        return json.dumps(flat[:SHORT_TEXT_CHARS], ensure_ascii=False) + (
            f"… ({len(value)} chars; --full shows all)"
        )

    def error(self, error: ErrorInfo) -> str:
        retry = ", retryable" if error.retryable else ""
        return f"{error.code} ({error.error_class}{retry}): {error.message}"

    # -- sections

    def request(self) -> None:
        self.section("Request")
        request = self.timeline.request
        if request is None:
            self.say(1, "(no workflow.requested event found)")
            return
        self.say(1, f"{self.at(request.occurred_at)} task: {self.text(request.task)}")
        options = request.options.model_dump(exclude_defaults=True)
        shown = ", ".join(f"{key}={value}" for key, value in options.items())
        self.say(1, f"options: {shown or '(defaults)'}")

    def plan(self) -> None:
        plan = self.timeline.plan
        if plan is None:
            self.say(1, "(no plan.created event found)")
            return
        self.say(1, f"{self.at(plan.occurred_at)} plan: {len(plan.steps)} step(s)")
        for step in plan.steps:
            needs = f" after {', '.join(step.depends_on)}" if step.depends_on else ""
            approval = ", needs approval" if step.needs_approval else ""
            self.say(2, f"{step.step_id} {step.title!r} [{step.complexity}]{needs}{approval}")
            self.say(3, f"instruction: {self.text(step.instruction)}")
        for view in self.timeline.plan_inputs:
            self.input(view, 1, ended=self.timeline.outcome is not None)

    def step(self, step: StepView) -> None:
        title = f" {step.planned.title!r}" if step.planned else ""
        self.section(f"Step {step.step_id}{title}")
        resumes = {
            view.answered.event_id: view.requested.request_id
            for view in self.timeline.inputs
            if view.answered is not None
        }
        for dispatched in step.dispatched:
            inputs = ", ".join(i.step_id for i in dispatched.inputs)
            after = resumes.get(dispatched.causation_id or "")
            self.say(
                1,
                f"{self.at(dispatched.occurred_at)} dispatched"
                + (f" with the results of {inputs}" if inputs else "")
                + (f" again, to resume after the answer to {after}" if after else ""),
            )
        if not step.attempts:
            self.say(1, "(never started)")
        ended = step.outcome is not None or self.timeline.outcome is not None
        for attempt in step.attempts:
            self.attempt(attempt, ended=ended)

    def attempt(self, attempt: Attempt, *, ended: bool) -> None:
        started = f" started {self.at(attempt.started.occurred_at)}" if attempt.started else ""
        self.say(1, f"attempt {attempt.number}{started}")
        for wait in attempt.waits:
            self.wait(wait, 2)
        for iteration in attempt.iterations:
            if iteration.number is not None:
                self.say(2, f"iteration {iteration.number}")
            for view in iteration.calls:
                self.call(view, 3)
        for asked in attempt.inputs:
            self.input(asked, 2, ended=ended)
        outcome = attempt.outcome
        if outcome is None:
            self.say(2, "(paused for input)" if attempt.inputs else "(no outcome)")
            return
        usage = f"{outcome.usage.total_tokens} tokens"
        models = f", models {', '.join(outcome.models)}" if outcome.models else ""
        facts = f"{outcome.iterations} iteration(s), {usage}{models}"
        if isinstance(outcome, StepCompleted):
            self.say(2, f"{self.at(outcome.occurred_at)} completed ({facts})")
            self.say(3, f"result: {self.text(outcome.result)}")
        else:
            self.say(2, f"{self.at(outcome.occurred_at)} failed ({facts})")
            self.say(3, f"error: {self.error(outcome.error)}")

    def input(self, view: InputView, depth: int, *, ended: bool) -> None:
        asked = view.requested
        where = f" in iteration {view.iteration}" if view.iteration is not None else ""
        self.say(
            depth,
            f"{self.at(asked.occurred_at)} input request {asked.request_id} "
            f"({asked.kind.replace('_', ' ')}{where}): {self.text(asked.question)}",
        )
        if asked.choices is not None:
            self.say(depth + 1, f"choices: {' | '.join(asked.choices)}")
        expiry = self.at(asked.expires_at) if asked.expires_at is not None else "never"
        self.say(depth + 1, f"expires: {expiry}")
        answered = view.answered
        if answered is not None:
            how = "by its timeout's default" if answered.source == "timeout" else "over"
            source = "" if answered.source == "timeout" else f" {answered.source}"
            self.say(
                depth + 1,
                f"{self.at(answered.occurred_at)} answered {how}{source}: "
                f"{self.text(answered.answer)}",
            )
        elif ended:
            self.say(depth + 1, "(never answered)")
        else:
            self.say(depth + 1, "(waiting for an answer)")

    def scope(self, scope: CallScopeView, depth: int) -> None:
        for wait in scope.waits:
            self.wait(wait, depth)
        for view in scope.calls:
            self.call(view, depth)

    def wait(self, wait: LLMWaiting, depth: int) -> None:
        why = f": {self.error(wait.error)}" if wait.error else " at the deployment's gate"
        next_try = f", next try {self.at(wait.next_try_at)}" if wait.next_try_at else ""
        self.say(
            depth,
            f"{self.at(wait.occurred_at)} waiting for {wait.model} at {wait.deployment} "
            f"after {wait.attempt} tries{why}{next_try}",
        )

    def call(self, view: CallView, depth: int) -> None:
        if isinstance(view.record, LLMCalled):
            self.llm_call(view.record, view, depth)
        else:
            self.tool_call(view.record, view, depth)

    def llm_call(self, record: LLMCalled, view: CallView, depth: int) -> None:
        head = (
            f"{self.at(record.started_at)} LLM call #{record.sequence} "
            f"({record.duration_ms} ms, tries: {len(record.tries)})"
        )
        self.say(depth, head)
        for number, attempt in enumerate(record.tries, start=1):
            self.llm_try(number, attempt, depth + 1)
        if view.incomplete:
            self.say(depth + 1, f"incomplete: {view.incomplete}")
        body = record.body
        if body is not None:
            request = body.request
            kept = f", {request.messages_kept} kept from call #{record.sequence - 1}"
            self.say(
                depth + 1,
                f"sent {len(request.messages)} new message(s)"
                + (kept if request.messages_kept else "")
                + (f", {len(request.tools)} tool(s) offered" if request.tools else ""),
            )
            for message in request.messages:
                self.message(message, depth + 2)
            response = body.response
            if response is not None:
                usage = response.usage
                self.say(
                    depth + 1,
                    f"answer from {response.model}"
                    + (f" at {response.deployment}" if response.deployment else "")
                    + f" ({usage.prompt_tokens}+{usage.completion_tokens} tokens, "
                    f"finish {response.finish_reason or '-'})",
                )
                if response.content is not None:
                    self.say(depth + 2, f"content: {self.text(response.content)}")
                for call in response.tool_calls:
                    arguments = self.text(call.arguments)
                    self.say(depth + 2, f"tool call {call.id}: {call.name}({arguments})")
        if record.error is not None:
            self.say(depth + 1, f"failed: {self.error(record.error)}")

    def llm_try(self, number: int, attempt: LLMTry, depth: int) -> None:
        result = f"failed: {self.error(attempt.error)}" if attempt.error else "answered"
        self.say(
            depth,
            f"try {number}: {attempt.model} at {attempt.deployment}, "
            f"{self.at(attempt.started_at)}, {attempt.duration_ms} ms, {result}",
        )

    def message(self, message: dict[str, Any], depth: int) -> None:
        role = str(message.get("role", "?"))
        content = message.get("content")
        text = content if isinstance(content, str) or content is None else json.dumps(content)
        self.say(depth, f"{role}: {self.text(text)}")
        for call in message.get("tool_calls") or ():
            function = call.get("function", {}) if isinstance(call, dict) else {}
            self.say(
                depth + 1,
                f"tool call {call.get('id', '?')}: {function.get('name', '?')}"
                f"({self.text(str(function.get('arguments', '')))})",
            )

    def tool_call(self, record: ToolCalled, view: CallView, depth: int) -> None:
        failed = ", failed" if record.failed else ""
        outcome = "" if record.outcome == "ran" else f", {record.outcome}"
        self.say(
            depth,
            f"{self.at(record.started_at)} tool call #{record.sequence} {record.name} "
            f"[{record.call_id}] ({record.duration_ms} ms{outcome}{failed})",
        )
        if view.incomplete:
            self.say(depth + 1, f"incomplete: {view.incomplete}")
        if record.body is not None:
            self.say(depth + 1, f"arguments: {self.text(record.body.arguments)}")
            self.say(depth + 1, f"result: {self.text(record.body.result)}")
        if record.error is not None:
            self.say(depth + 1, f"error: {self.error(record.error)}")

    def budget(self) -> None:
        self.section("Budget")
        budget = self.timeline.budget
        asked = (
            f"{budget.token_budget} tokens asked"
            if budget.token_budget
            else "no token budget asked (the deployment's default applied)"
        )
        if budget.cost_budget_usd is not None:
            asked += f", ${budget.cost_budget_usd:g} asked"
        used = (
            f"{budget.used_tokens} tokens used (from {budget.used_source})"
            if budget.used_tokens is not None
            else "no usage recorded"
        )
        share = (
            f" = {100 * budget.used_tokens / budget.token_budget:.0f}%"
            if budget.token_budget and budget.used_tokens is not None
            else ""
        )
        self.say(1, f"{used} of {asked}{share}")
        exhausted = budget.exhausted
        if exhausted is not None:
            limit_cost = (
                f"${exhausted.limit_cost_usd:g}" if exhausted.limit_cost_usd is not None else "-"
            )
            self.say(
                1,
                f"{self.at(exhausted.occurred_at)} budget exhausted: {exhausted.used_tokens} of "
                f"{exhausted.limit_tokens if exhausted.limit_tokens is not None else '-'} tokens, "
                f"${exhausted.used_cost_usd:g} of "
                f"{limit_cost}; "
                f"policy {exhausted.policy}",
            )

    def outcome(self) -> None:
        self.section("Outcome")
        t = self.timeline
        if t.cancel_requested is not None:
            self.say(
                1,
                f"{self.at(t.cancel_requested.occurred_at)} cancel requested: "
                f"{t.cancel_requested.reason}",
            )
        outcome = t.outcome
        if outcome is None and t.status == "awaiting_input":
            waiting = ", ".join(v.requested.request_id for v in t.inputs if v.answered is None)
            self.say(1, f"(no terminal event: the workflow waits for input: {waiting})")
        elif outcome is None:
            self.say(1, "(no terminal event: the workflow is still running, or its end is lost)")
        elif isinstance(outcome, WorkflowCompleted):
            partial = ", partial" if outcome.partial else ""
            self.say(1, f"{self.at(outcome.occurred_at)} completed{partial}")
            self.say(2, f"answer: {self.text(outcome.result)}")
        elif isinstance(outcome, WorkflowCancelled):
            self.say(1, f"{self.at(outcome.occurred_at)} cancelled: {outcome.reason}")
        else:
            self.say(1, f"{self.at(outcome.occurred_at)} failed: {self.error(outcome.error)}")
