"""What ``tributary run`` and ``events`` say of each event, and how answers are matched."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from tributary_cli.answers import AnswerBook, chosen, parse_answer
from tributary_cli.progress import InputRequest, RunProgress, shorten
from tributary_client import WorkflowEvent


def fold(progress: RunProgress, event_type: str, **data: Any) -> str | None:
    line = progress.apply(WorkflowEvent(type=event_type, id="1-0", data=data))
    return None if line is None else line[len(f"{event_type:<19} ") :]


def test_lines_follow_the_workflow_and_the_state_keeps_each_step() -> None:
    progress = RunProgress("wf_1")
    plan = [{"step_id": "s1", "index": 0, "title": "Find rivers"}]
    assert fold(progress, "plan.created", steps=plan) == "1 steps: Find rivers"
    assert fold(progress, "step.started", step_id="s1", attempt=2) == "1. Find rivers (attempt 2)"
    assert (progress.steps["s1"].state, progress.steps["s1"].attempt) == ("running", 2)
    done = fold(progress, "step.completed", step_id="s1", result="Volga\nDanube", attempt=2)
    assert done == "1. Find rivers -> Volga Danube"
    assert progress.steps["s1"].state == "completed"
    failed = {"code": "llm_unavailable", "message": "down"}
    assert fold(progress, "step.failed", step_id="s9", error=failed) == (
        "s9 failed: llm_unavailable: down"
    )
    assert fold(progress, "call.payload", digest="d", part=0, parts=2, data="..") is None
    assert fold(progress, "workflow.completed", result="ok", partial=True) == "partial answer ready"
    assert (progress.status, progress.result, progress.partial) == ("completed", "ok", True)


def test_calls_add_up_tokens_per_step_and_in_all() -> None:
    progress = RunProgress("wf_1")
    fold(progress, "plan.created", steps=[{"step_id": "s1", "index": 0, "title": "Sum"}])
    usage = {"prompt_tokens": 30, "completion_tokens": 12}
    body = {"request": {}, "response": {"model": "m", "usage": usage}}
    assert (
        fold(progress, "llm.called", role="planner", body=body)
        == "planner: m, 42 tokens (total 42)"
    )
    assert fold(progress, "llm.called", role="agent", step_id="s1", body=body) == (
        "1. Sum: m, 42 tokens (total 84)"
    )
    assert progress.steps["s1"].tokens == 42
    tool = {"arguments": '{"expression": "2 + 2"}', "result": "4"}
    line = fold(progress, "tool.called", step_id="s1", name="calculator", body=tool, failed=True)
    assert line == '1. Sum: calculator({"expression": "2 + 2"}) -> 4 (failed)'
    assert progress.steps["s1"].detail == 'calculator({"expression": "2 + 2"}) -> 4 (failed)'


def delta(step_id: str | None, text: str, *, call: int = 1, try_number: int = 1) -> dict[str, Any]:
    return {"step_id": step_id, "call": call, "try_number": try_number, "seq": 0, "text": text}


def test_live_deltas_show_what_a_step_and_the_synthesis_are_writing_without_a_line() -> None:
    progress = RunProgress("wf_1")
    fold(progress, "plan.created", steps=[{"step_id": "s1", "index": 0, "title": "Sum"}])
    fold(progress, "step.started", step_id="s1", attempt=1)
    assert fold(progress, "llm.delta", **delta("s1", "The sum ")) is None
    fold(progress, "llm.delta", **delta("s1", "is 4"))
    assert progress.steps["s1"].detail == "✎ The sum is 4"
    fold(progress, "llm.delta", **delta("s1", "Again", try_number=2))  # the call tried again
    assert progress.steps["s1"].detail == "✎ Again"
    fold(progress, "step.completed", step_id="s1", result="4")
    fold(progress, "llm.delta", **delta("s1", " late"))
    assert progress.steps["s1"].detail == "4", "a step that ended keeps its result in view"
    fold(progress, "llm.delta", **delta(None, "Four, "))
    fold(progress, "llm.delta", **delta(None, "indeed"))
    assert progress.drafting == "Four, indeed"


def test_a_waiting_call_says_for_what_and_until_when() -> None:
    progress = RunProgress("wf_1")
    fold(progress, "plan.created", steps=[{"step_id": "s1", "index": 0, "title": "Find rivers"}])
    waiting = {
        "step_id": "s1",
        "role": "agent",
        "model": "gpt-4o-mini",
        "deployment": "eu",
        "error": {"code": "llm_unavailable", "message": "down"},
        "next_try_at": "2025-01-02T10:11:12.5+00:00",
    }
    assert fold(progress, "llm.waiting", **waiting) == (
        "1. Find rivers waiting for gpt-4o-mini at eu (llm_unavailable: down); next try 10:11:12"
    )
    held = {**waiting, "step_id": None, "role": "planner", "error": None, "next_try_at": None}
    assert fold(progress, "llm.waiting", **held) == (
        "planner waiting for gpt-4o-mini at eu (its turn at the gate); next try when let"
    )


def test_unknown_events_show_their_fields_without_the_envelope() -> None:
    line = fold(RunProgress("wf_1"), "odd.event", event_id="x", workflow_id="w", n=1)
    assert line == '{"n": 1}'
    assert shorten("x" * 200, 10) == "x" * 9 + "…"


def test_answers_match_a_request_by_id_or_question_else_the_default() -> None:
    request = InputRequest.of(
        {"request_id": "rq_7", "question": "Proceed  with the refund?", "choices": ["yes", "no"]}
    )
    assert AnswerBook.of([parse_answer("rq_7=no")], None).answer_for(request) == "no"
    assert (
        AnswerBook.of([parse_answer("proceed with the REFUND?=yes")], None).answer_for(request)
        == "yes"
    )
    assert AnswerBook.of([parse_answer("rq_8=no")], "later").answer_for(request) == "later"
    assert AnswerBook.of([], None).answer_for(request) is None
    assert parse_answer("a=b=c") == ("a", "b=c")
    with pytest.raises(argparse.ArgumentTypeError):
        parse_answer("=x")
    assert [chosen(request, typed) for typed in ("1", " 2 ", "3", "maybe")] == [
        "yes",
        "no",
        "3",
        "maybe",
    ]
