"""``tributary replay`` and ``tributary events export`` as an operator types them.

The commands run on a context whose Kafka read returns events built in code and
whose key store refuses to open: replay and export never need Redis. The real read
from Kafka is exercised by tests/integration/test_replay_e2e.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from tests.support.recorded_run import (
    ANSWER,
    LONG_PAGE,
    PAUSED_WORKFLOW,
    QUESTION,
    WORKFLOW,
    paused_run,
    recorded_run,
)
from tributary_cli.app import main
from tributary_cli.context import CommandContext, deployment_context
from tributary_cli.replay.render import SHORT_TEXT_CHARS, as_json
from tributary_cli.replay.source import (
    EventsRead,
    KafkaUnavailable,
    partition_of,
    read_export,
    read_workflow_events,
    write_export,
)
from tributary_cli.replay.timeline import build_timeline, in_timeline_order
from tributary_shared.core.events import AnyEvent, encode_event
from tributary_shared.core.ports import ApiKeyStore


class Terminal:
    def __init__(self) -> None:
        self.out: list[str] = []
        self.err: list[str] = []


def no_redis() -> AbstractAsyncContextManager[ApiKeyStore]:
    raise AssertionError("replay and export must not open Redis")


def kafka_holding(events: Sequence[AnyEvent], reads: list[str] | None = None) -> CommandContext:
    async def workflow_events(workflow_id: str) -> EventsRead:
        if reads is not None:
            reads.append(workflow_id)
        mine = [e for e in events if e.workflow_id == workflow_id]
        return EventsRead(events=mine, partitions={"tributary.workflow.events": 3})

    return CommandContext(key_store=no_redis, workflow_events=workflow_events)


def run(context: CommandContext, terminal: Terminal, *argv: str) -> int:
    wired = CommandContext(
        key_store=context.key_store,
        workflow_events=context.workflow_events,
        say=terminal.out.append,
        warn=terminal.err.append,
    )
    return main(list(argv), context=lambda: wired)


@pytest.fixture
def terminal() -> Terminal:
    return Terminal()


def test_replay_prints_the_run_from_the_request_to_the_answer(terminal: Terminal) -> None:
    assert run(kafka_holding(recorded_run()), terminal, "replay", WORKFLOW) == 0
    [text] = terminal.out
    for expected in (
        "Request",
        "token_budget=300",
        "plan: 3 step(s)",
        "s3 'Combine' [medium] after s1, s2",
        "try 1: m1 at d1",
        "failed: llm_unavailable",
        "waiting for m1 at d1 after 1 tries",
        "tool call #1 calculator [call_1]",
        'result: "42"',
        "sent 2 new message(s), 2 kept from call #1",
        "attempt 2 started",
        "failed (1 iteration(s), 0 tokens)",
        "error: dependency_failed",
        "325 tokens used (from llm.called) of 300 tokens asked",
        "budget exhausted: 325 of 300 tokens",
        "completed, partial",
        ANSWER,
    ):
        assert expected in text, expected
    sections = ["Request", "Planning", "Step s1", "Step s2", "Step s3", "Synthesis", "Outcome"]
    positions = [text.index(f"\n{section}") for section in sections]
    assert positions == sorted(positions)


def test_long_texts_are_shortened_unless_asked_whole(terminal: Terminal) -> None:
    context = kafka_holding(recorded_run())
    assert run(context, terminal, "replay", WORKFLOW) == 0
    assert LONG_PAGE.strip() not in terminal.out[0]
    assert f"({len(LONG_PAGE)} chars; --full shows all)" in terminal.out[0]
    assert run(context, terminal, "replay", WORKFLOW, "--full") == 0
    assert LONG_PAGE in terminal.out[1]
    assert len(terminal.out[0]) < len(terminal.out[1]) - len(LONG_PAGE) + SHORT_TEXT_CHARS * 4


def test_replay_json_is_the_documented_structure(terminal: Terminal) -> None:
    assert run(kafka_holding(recorded_run()), terminal, "replay", WORKFLOW, "--json") == 0
    data = json.loads(terminal.out[0])
    assert (data["format"], data["version"]) == ("tributary.timeline", 1)
    assert data["status"] == "completed"
    assert data["request"]["options"]["token_budget"] == 300
    assert [s["step_id"] for s in data["plan"]["steps"]] == ["s1", "s2", "s3"]
    assert [(s["step_id"], s["status"]) for s in data["steps"]] == [
        ("s1", "completed"),
        ("s2", "failed"),
        ("s3", "failed"),
    ]
    [s1_attempt] = data["steps"][0]["attempts"]
    first, tool = s1_attempt["iterations"][0]["calls"]
    assert len(first["tries"]) == 2
    assert first["response"]["tool_calls"][0]["name"] == "calculator"
    assert (tool["kind"], tool["name"], tool["result"]) == ("tool", "calculator", "42")
    second = s1_attempt["iterations"][1]["calls"][0]
    assert (second["request"]["messages_kept"], second["request"]["messages_total"]) == (2, 4)
    assert data["budget"]["exhausted"]["policy"] == "partial"
    assert data["outcome"]["result"] == ANSWER
    assert data["outcome"]["partial"] is True
    assert data["events"][0]["type"] == "workflow.requested"
    assert data["problems"] == []


def test_an_export_replays_the_same_without_kafka_or_redis(
    tmp_path: Path, terminal: Terminal
) -> None:
    reads: list[str] = []
    file = tmp_path / "run.jsonl"
    events = recorded_run()
    kafka = kafka_holding(events, reads)
    assert run(kafka, terminal, "events", "export", WORKFLOW, "-o", str(file)) == 0
    assert reads == [WORKFLOW]
    lines = file.read_bytes().splitlines()
    assert json.loads(lines[0])["workflow_id"] == WORKFLOW
    assert lines[1:] == [encode_event(e) for e in in_timeline_order(events)]

    assert run(kafka, terminal, "replay", WORKFLOW, "--json") == 0
    offline = CommandContext(key_store=no_redis)  # no Kafka either
    assert run(offline, terminal, "replay", "--from-file", str(file), "--json") == 0
    assert run(offline, terminal, "replay", WORKFLOW, "--from-file", str(file), "--json") == 0
    from_kafka, from_file, named = (json.loads(out) for out in terminal.out[1:])
    assert from_file == from_kafka == named
    assert reads == [WORKFLOW, WORKFLOW]


def test_a_file_round_trip_keeps_every_event(tmp_path: Path) -> None:
    file = tmp_path / "run.jsonl"
    events = recorded_run()
    assert write_export(file, WORKFLOW, events + events[:3]) == len(events)
    workflow_id, read = read_export(file)
    assert workflow_id == WORKFLOW
    assert read == in_timeline_order(events)
    assert as_json(build_timeline(read)) == as_json(build_timeline(events))


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "is empty"),
        (b'{"hello": "world"}\n', "is not an export"),
        (b"not json at all\n", "is not an export"),
        (
            b'{"format": "tributary.events", "version": 9, "workflow_id": "w"}\n',
            "version 9",
        ),
        (
            b'{"format": "tributary.events", "version": 1, "workflow_id": "w"}\n{"type": "x"}\n',
            "line 2: not an event",
        ),
    ],
    ids=["empty", "other-json", "not-json", "newer-version", "bad-event"],
)
def test_a_file_that_is_not_an_export_is_refused_clearly(
    tmp_path: Path, terminal: Terminal, content: bytes, problem: str
) -> None:
    file = tmp_path / "some.jsonl"
    file.write_bytes(content)
    assert run(CommandContext(), terminal, "replay", "--from-file", str(file)) == 2
    [error] = terminal.err
    assert error.startswith("error: ")
    assert problem in error


def test_a_missing_file_or_no_workflow_is_a_usage_error(tmp_path: Path, terminal: Terminal) -> None:
    missing = tmp_path / "missing.jsonl"
    assert run(CommandContext(), terminal, "replay", "--from-file", str(missing)) == 2
    assert "cannot read" in terminal.err[-1]
    assert run(CommandContext(), terminal, "replay") == 2
    assert "name a WORKFLOW_ID" in terminal.err[-1]


def test_an_unknown_workflow_is_a_clear_error(tmp_path: Path, terminal: Terminal) -> None:
    kafka = kafka_holding(recorded_run())
    assert run(kafka, terminal, "replay", "wf_nobody") == 1
    assert "no events of workflow 'wf_nobody' on Kafka" in terminal.err[-1]
    file = tmp_path / "out.jsonl"
    assert run(kafka, terminal, "events", "export", "wf_nobody", "-o", str(file)) == 1
    assert not file.exists()
    assert terminal.out == []


def test_missing_payload_parts_show_in_the_timeline(terminal: Terminal) -> None:
    events = recorded_run(with_all_parts=False)
    assert run(kafka_holding(events), terminal, "replay", WORKFLOW) == 0
    assert "incomplete: tool.called" in terminal.out[0]
    assert "\nProblems\n" in terminal.out[0]
    assert run(kafka_holding(events), terminal, "replay", WORKFLOW, "--json") == 0
    assert len(json.loads(terminal.out[1])["problems"]) == 1


def test_unreachable_kafka_is_reported_within_the_bound(
    monkeypatch: pytest.MonkeyPatch, terminal: Terminal
) -> None:
    # The deployment's own context, from the environment: nothing listens on port 1.
    monkeypatch.setenv("TRIBUTARY_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("TRIBUTARY_REDIS_URL", "redis://127.0.0.1:1/0")
    context = deployment_context()
    began = time.monotonic()
    assert run(context, terminal, "replay", WORKFLOW) == 1
    assert time.monotonic() - began < 20
    [error] = terminal.err
    assert error.startswith("error: cannot reach Kafka at 127.0.0.1:1")


async def test_a_kafka_that_never_answers_times_out() -> None:
    # A listening socket that accepts and never speaks Kafka.
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        await reader.read()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    began = time.monotonic()
    try:
        with pytest.raises(KafkaUnavailable, match=r"did not answer within 2 s"):
            await read_workflow_events(WORKFLOW, bootstrap_servers=f"127.0.0.1:{port}", timeout_s=2)
    finally:
        server.close()
        for writer in accepted:
            writer.close()
        await server.wait_closed()
    assert time.monotonic() - began < 10


@pytest.mark.parametrize(
    ("key", "java_murmur2"),
    [
        ("21", -973932308),
        ("foobar", -790332482),
        ("a-little-bit-long-string", -985981536),
        ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    ],
)
def test_the_partition_is_the_java_clients_murmur2_choice(key: str, java_murmur2: int) -> None:
    # Kafka's own test vectors (clients' UtilsTest): a workflow's events land where any
    # Kafka client keyed by its id would put them.
    for partitions in (3, 12, 24):
        assert partition_of(key, range(partitions)) == (java_murmur2 & 0x7FFFFFFF) % partitions


def test_replay_shows_each_pause_with_its_answer_in_the_step(terminal: Terminal) -> None:
    assert run(kafka_holding(paused_run()), terminal, "replay", PAUSED_WORKFLOW) == 0
    [text] = terminal.out
    p1 = text[text.index("\nStep p1") : text.index("\nStep p2")]
    lines = [line.strip() for line in p1.splitlines()]
    asked = lines.index(f'+3.600s input request in_p1 (question in iteration 1): "{QUESTION}"')
    # After the call that asked, before the attempt that resumed.
    assert lines[asked - 1].startswith("tool call call_ask: ask_human(")
    assert lines[asked + 1 : asked + 5] == [
        "choices: red | blue",
        "expires: +3603.600s",
        '+29.000s answered over http: "blue"',
        "(paused for input)",
    ]
    assert lines[asked + 5] == "attempt 2 started +30.000s"
    assert "+29.100s dispatched again, to resume after the answer to in_p1" in lines
    for expected in (
        '+1.200s input request in_plan (plan approval): "Approve this plan? 1. Colour; 2. Publish"',
        '+2.000s answered over kafka: "approve"',
        "p2 'Publish' [medium], needs approval",
        '+3.100s input request in_p2 (step approval): "Approve step 2 before it runs? Publish"',
        '+4.000s answered over http: "reject"',
        "error: step_rejected (logic): the step was rejected (in_p2)",
    ):
        assert expected in text, expected


def test_replay_of_a_waiting_workflow_says_what_it_waits_for(terminal: Terminal) -> None:
    events = paused_run(answered=False)
    assert run(kafka_holding(events), terminal, "replay", PAUSED_WORKFLOW) == 0
    [text] = terminal.out
    assert text.startswith(f"Workflow {PAUSED_WORKFLOW} (tenant acme): awaiting_input")
    assert text.count("(waiting for an answer)") == 2
    assert "(no terminal event: the workflow waits for input: in_p1, in_p2)" in text


def test_replay_json_has_each_request_and_its_answer(terminal: Terminal) -> None:
    assert run(kafka_holding(paused_run()), terminal, "replay", PAUSED_WORKFLOW, "--json") == 0
    data = json.loads(terminal.out[0])
    [plan_approval] = data["plan"]["inputs"]
    assert plan_approval["kind"] == "plan_approval"
    assert plan_approval["answer"]["at"].startswith("2026-03-01T12:00:02")
    assert (plan_approval["answer"]["answer"], plan_approval["answer"]["source"]) == (
        "approve",
        "kafka",
    )
    paused, resumed = data["steps"][0]["attempts"]
    [question] = paused["inputs"]
    assert {k: question[k] for k in ("type", "request_id", "kind", "step_id", "iteration")} == {
        "type": "input.requested",
        "request_id": "in_p1",
        "kind": "question",
        "step_id": "p1",
        "iteration": 1,
    }
    assert (question["question"], question["choices"]) == (QUESTION, ["red", "blue"])
    assert question["expires_at"].startswith("2026-03-01T13:00:03.6")
    assert (question["answer"]["answer"], question["answer"]["source"]) == ("blue", "http")
    assert resumed["inputs"] == []
    [approval] = data["steps"][1]["attempts"][0]["inputs"]
    assert (approval["kind"], approval["answer"]["answer"]) == ("step_approval", "reject")
    types = [event["type"] for event in data["events"]]
    assert types.count("input.requested") == 3
    assert types.count("input.answered") == 3
