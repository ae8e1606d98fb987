"""SSE parsing, as the tests' own stream readers do it."""

from __future__ import annotations

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
