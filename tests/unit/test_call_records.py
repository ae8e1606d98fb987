"""The call record's two size rules: kept messages and payload parts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tributary_shared.core.events import (
    CallPayload,
    LLMCallBody,
    LLMCalled,
    LLMRequestRecord,
    LLMResponseRecord,
    ToolCallBody,
    ToolCalled,
    decode_event,
    encode_event,
)
from tributary_shared.core.recording import (
    IncompleteRecord,
    conversations,
    kept_prefix,
    resolve,
    scope_of,
    spill,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def llm_record(sequence: int, messages: list[dict[str, str]], kept: int = 0) -> LLMCalled:
    return LLMCalled(
        workflow_id="wf_1",
        tenant_id="acme",
        role="agent",
        step_id="s1",
        attempt=1,
        iteration=sequence,
        sequence=sequence,
        started_at=NOW,
        duration_ms=5,
        body=LLMCallBody(
            request=LLMRequestRecord(messages=tuple(messages), messages_kept=kept, models=("m",)),
            response=LLMResponseRecord(content="ok", model="m"),
        ),
    )


def tool_record(result: str) -> ToolCalled:
    return ToolCalled(
        workflow_id="wf_1",
        tenant_id="acme",
        role="agent",
        step_id="s1",
        iteration=1,
        sequence=1,
        started_at=NOW,
        duration_ms=1,
        call_id="call_1",
        name="fetch_url",
        body=ToolCallBody(arguments='{"url": "https://example.com"}', result=result),
    )


def test_a_small_record_is_sent_whole() -> None:
    record = tool_record("short")
    sent, parts = spill(record)
    assert sent == record
    assert parts == []


def test_a_large_body_travels_in_parts_and_comes_back_whole() -> None:
    result = "é€😀 long page " * 40_000  # multi-byte characters at every cut
    record = tool_record(result)
    sent, parts = spill(record, inline_max_bytes=64 * 1024, part_bytes=50_000)
    assert sent.body is None
    assert sent.payload is not None
    assert len(parts) == sent.payload.parts > 1
    for part in parts:
        assert len(part.data.encode()) <= 50_000
        assert len(encode_event(part)) < 64 * 1024
    wire = [decode_event(encode_event(event)) for event in [*parts, sent]]
    (back,) = resolve(wire)
    assert back == record.model_copy(update={"payload": None})
    assert isinstance(back, ToolCalled)
    assert back.body is not None
    assert back.body.result == result


def test_a_missing_part_is_reported_not_guessed() -> None:
    sent, parts = spill(tool_record("x" * 300_000), part_bytes=100_000)
    with pytest.raises(IncompleteRecord, match="were found"):
        resolve([*parts[:-1], sent])


def test_a_tampered_part_is_refused() -> None:
    sent, parts = spill(tool_record("x" * 300_000), part_bytes=100_000)
    bad = CallPayload.model_validate({**parts[0].model_dump(), "data": "y" * len(parts[0].data)})
    with pytest.raises(IncompleteRecord, match="digest"):
        resolve([bad, *parts[1:], sent])


def test_kept_prefix_counts_the_shared_leading_messages() -> None:
    a, b, c = ({"role": "user", "content": x} for x in "abc")
    assert kept_prefix([a, b], [a, b, c]) == 2
    assert kept_prefix([a, b], [a, c]) == 1
    assert kept_prefix([], [a]) == 0


def test_conversations_rebuild_each_call_from_the_kept_messages() -> None:
    a, b, c, d = ({"role": "user", "content": x} for x in "abcd")
    first = llm_record(1, [a, b])
    second = llm_record(2, [c], kept=2)
    third = llm_record(3, [d], kept=1)  # the conversation was rewritten after a
    whole = conversations([third, first, second])
    scope = scope_of(first)
    assert whole[(scope, 1)] == (a, b)
    assert whole[(scope, 2)] == (a, b, c)
    assert whole[(scope, 3)] == (a, d)
