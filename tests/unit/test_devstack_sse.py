"""SSE parsing and the demo's one-line event summaries."""

from __future__ import annotations

from tributary_devstack.demo_format import EventFormatter, parse_data, shorten
from tributary_devstack.sse import SseEvent, SseParser, parse_lines


def test_events_are_dispatched_on_blank_lines() -> None:
    lines = [
        ": ping",
        "id: 1-0",
        "event: plan.created",
        'data: {"steps": []}',
        "",
        "id:2-0",
        "event: step.started",
        "data: a",
        "data: b",
        "",
    ]
    parser = SseParser()
    events = list(parse_lines(lines, parser))
    assert events == [
        SseEvent("plan.created", '{"steps": []}', "1-0"),
        SseEvent("step.started", "a\nb", "2-0"),
    ]
    assert parser.last_event_id == "2-0"


def test_comments_and_empty_blocks_produce_nothing_and_default_type_is_message() -> None:
    parser = SseParser()
    assert list(parse_lines([": keep-alive", "", "", "data: x", ""], parser)) == [
        SseEvent("message", "x", None)
    ]


def test_crlf_line_endings_are_tolerated() -> None:
    events = list(parse_lines(["event: e\r\n", "data: d\r\n", "\r\n"]))
    assert events == [SseEvent("e", "d", None)]


def test_summaries_follow_the_workflow() -> None:
    fmt = EventFormatter()
    plan = {"steps": [{"step_id": "s1", "index": 0, "title": "Find rivers"}]}
    assert fmt.summary("plan.created", plan) == "1 steps: Find rivers"
    assert fmt.summary("step.started", {"step_id": "s1", "attempt": 2}) == (
        "'Find rivers' (attempt 2)"
    )
    done = fmt.summary("step.completed", {"step_id": "s1", "result": "Volga\nDanube"})
    assert done == "'Find rivers' -> Volga …"
    failed = {"step_id": "s9", "error": {"code": "llm_unavailable", "message": "down"}}
    assert fmt.summary("step.failed", failed) == "s9 failed: llm_unavailable: down"
    assert fmt.summary("workflow.completed", {"result": "ok", "partial": True}) == (
        "result (partial): ok"
    )
    assert fmt.summary("workflow.failed", {"error": {"code": "c", "message": "m"}}) == "c: m"
    waiting = {
        "step_id": "s1",
        "role": "agent",
        "model": "gpt-4o-mini",
        "deployment": "eu",
        "error": {"code": "llm_unavailable", "message": "down"},
        "next_try_at": "2025-01-02T10:11:12.5+00:00",
    }
    assert fmt.summary("llm.waiting", waiting) == (
        "'Find rivers' waiting for gpt-4o-mini at eu (llm_unavailable: down); next try 10:11:12"
    )
    planner = {**waiting, "step_id": None, "role": "planner"}
    assert fmt.summary("llm.waiting", planner).startswith("planner waiting for gpt-4o-mini")
    held = {**waiting, "error": None, "next_try_at": None}
    assert fmt.summary("llm.waiting", held).endswith("(its turn at the gate); next try when let")


def test_unknown_events_show_their_payload_without_the_envelope() -> None:
    fmt = EventFormatter()
    line = fmt.line("odd.event", {"event_id": "x", "workflow_id": "w", "n": 1})
    assert line.split() == ["odd.event", '{"n":', "1}"]


def test_helpers() -> None:
    assert shorten("x" * 200, 10) == "x" * 9 + "…"
    assert parse_data('{"a": 1}') == {"a": 1}
    assert parse_data("plain") == "plain"
