"""A workflow recorded by the real services, read back from Kafka, reruns with no divergence.

The services run as processes over the real Kafka and Redis with the scripted
LLM over HTTP. The workflow has a DAG plan (two roots and a join), a calculator
call, a call rate limited once (429, retried) and a call whose model the endpoint
does not know (404, handed to the fallback model). Its events and call records
are read from Kafka as ``tributary replay`` reads them (the workflow's partition
of each topic), then rerun in this process through the checkout's code, with the
services' settings: no divergence, and not one request more at the scripted
server. A workflow whose agent asked a person (answered over HTTP) replays with
its question and answer in the step, and reruns with the recorded answer through
`tributary replay --rerun`: no divergence, no model asked, nobody waited for.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from tests.support.cli_runs import NO_KAFKA, cli_env, tributary
from tests.support.client import GatewayClient
from tests.support.stack import RunningServices, service_env
from tributary_cli.replay.rerun import rerun
from tributary_scripted_llm import ScriptedLLMAdmin
from tributary_shared.core import topics
from tributary_shared.core.events import AnyEvent, LLMCalled, ToolCalled, decode_event

pytestmark = pytest.mark.integration

MODEL = "gpt-4o-mini"


def plan(marker: str) -> list[dict[str, Any]]:
    return [
        {"title": "Width", "instruction": f"What is 6 * 7? ({marker}-width)"},
        {"title": "Height", "instruction": f"What is 3 + 4? ({marker}-height)"},
        {"title": "Area", "instruction": "Combine the two results", "depends_on": [1, 2]},
    ]


async def workflow_events(bootstrap: str, workflow_id: str) -> list[AnyEvent]:
    """Every event of the workflow on its partition of each topic (dead letters aside)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        key = workflow_id.encode()
        partitions = []
        for spec in topics.ALL_TOPICS:
            if spec is topics.DEAD_LETTERS:
                continue
            known = list(range(spec.partitions))  # as the stack created the topic
            partitions.append(TopicPartition(spec.name, DefaultPartitioner()(key, known, known)))
        ends = await consumer.end_offsets(partitions)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        found: list[AnyEvent] = []
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=500)
            for tp, records in batch.items():
                found += [
                    decode_event(r.value or b"")
                    for r in records
                    if r.offset < ends[tp] and r.key == key
                ]
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return found
    finally:
        await consumer.stop()


async def recorded_events(
    bootstrap: str, workflow_id: str, *, within: float = 30
) -> list[AnyEvent]:
    """The workflow's events once the synthesis's call record is among them."""
    deadline = time.monotonic() + within
    while True:
        events = await workflow_events(bootstrap, workflow_id)
        if any(isinstance(e, LLMCalled) and e.role == "synthesizer" for e in events):
            return events
        assert time.monotonic() < deadline, "the synthesis's call record never came"
        await asyncio.sleep(0.5)


async def test_a_recorded_workflow_reruns_through_this_code_with_no_divergence(
    gateway: GatewayClient,
    llm_admin: ScriptedLLMAdmin,
    services: RunningServices,
    marker: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    llm_admin.add_rule(
        contains=marker, schema_name="tributary_plan", responses=[{"json": {"steps": plan(marker)}}]
    )
    llm_admin.add_rule(
        contains=f"{marker}-height",
        responses=[{"status": 429, "headers": {"Retry-After": "1"}}],
        repeat_last=False,
    )
    llm_admin.add_rule(
        contains=f"{marker}-width",
        model=MODEL,
        responses=[
            {"status": 404, "error": {"message": "no such model", "code": "model_not_found"}}
        ],
        repeat_last=False,
    )
    workflow_id, _, state = await gateway.run(f"Area of a rectangle {marker}")
    assert state["status"] == "completed"
    assert [s["depends_on"] for s in state["steps"]] == [[], [], ["s1", "s2"]]

    events = await recorded_events(services.stack.config.kafka_bootstrap, workflow_id)
    calls = [e for e in events if isinstance(e, LLMCalled)]
    tries = [t for call in calls for t in call.tries]
    assert any(t.error is not None and t.error.code == "llm_rate_limited" for t in tries)
    assert any(t.error is not None and t.error.code == "llm_model_not_found" for t in tries)
    assert any(
        call.body and call.body.response and call.body.response.model != MODEL for call in calls
    )  # the fallback model answered
    assert any(isinstance(e, ToolCalled) and e.name == "calculator" for e in events)

    for name, value in service_env(services.llm_base_url).items():
        monkeypatch.setenv(name, value)
    requests = len(llm_admin.requests())

    report = await rerun(events)

    assert report.divergence is None, report.render()
    assert len(llm_admin.requests()) == requests  # no model was asked
    assert report.llm_calls_replayed == len({c.event_id for c in calls})
    assert report.tool_calls_replayed >= 2  # a calculator call in each root step
    assert report.status == "completed"
    assert report.final_answer == state["result"]

    # As the operator does it: exported from Kafka, rerun from the file on a machine
    # with neither Kafka nor Redis, then from Kafka with the last step live.
    llm = {
        k: v for k, v in service_env(services.llm_base_url).items() if "LLM" in k or "MODEL" in k
    }
    export = tmp_path / "run.jsonl"
    exported = await tributary(
        cli_env(services.stack), "events", "export", workflow_id, "-o", str(export)
    )
    assert exported.status == 0, exported.stderr
    offline = cli_env(services.stack, TRIBUTARY_KAFKA_BOOTSTRAP_SERVERS=NO_KAFKA, **llm)
    from_file = await tributary(offline, "replay", "--from-file", str(export), "--rerun")
    assert from_file.status == 0, from_file.stdout + from_file.stderr
    assert from_file.stdout.splitlines()[0] == "0 divergences"
    assert len(llm_admin.requests()) == requests

    def asked(step: str) -> int:
        return len(llm_admin.requests(contains=f"Your step: {step}\n"))

    before = {step: asked(step) for step in ("Width", "Height", "Area")}
    live = await tributary(
        cli_env(services.stack, **llm), "replay", workflow_id, "--rerun", "--live-from", "Area"
    )
    assert live.status == 0, live.stdout + live.stderr
    assert live.stdout.splitlines()[0] == "0 divergences"
    # The model was called for the named step (and the synthesis), and not before it.
    assert asked("Width") == before["Width"]
    assert asked("Height") == before["Height"]
    assert asked("Area") > before["Area"]


async def test_a_workflow_that_asked_a_person_reruns_with_the_recorded_answer(
    gateway: GatewayClient,
    llm_admin: ScriptedLLMAdmin,
    services: RunningServices,
    marker: str,
) -> None:
    steps = [{"title": "Colour", "instruction": f"Which colour? ({marker}-colour)"}]
    llm_admin.add_rule(
        contains=marker, schema_name="tributary_plan", responses=[{"json": {"steps": steps}}]
    )
    llm_admin.add_rule(
        contains=f"{marker}-colour",
        has_tools=True,
        has_tool_result=False,
        responses=[
            {
                "tool_calls": [
                    {
                        "name": "ask_human",
                        "arguments": {"question": "which colour?", "choices": ["red", "blue"]},
                    }
                ]
            }
        ],
    )
    workflow_id = await gateway.start(f"Pick a colour {marker}")
    deadline = time.monotonic() + 40
    while True:
        state = await gateway.get(workflow_id)
        if state["status"] == "awaiting_input":
            break
        assert time.monotonic() < deadline, state["status"]
        await asyncio.sleep(0.2)
    [request] = state["input_requests"]
    answered = await gateway.http.post(
        f"/v1/workflows/{workflow_id}/input",
        json={"request_id": request["request_id"], "answer": "blue"},
    )
    assert answered.status_code == 202, answered.text
    await recorded_events(services.stack.config.kafka_bootstrap, workflow_id, within=60)
    requests = len(llm_admin.requests())

    llm = {
        k: v for k, v in service_env(services.llm_base_url).items() if "LLM" in k or "MODEL" in k
    }
    shown = await tributary(cli_env(services.stack, **llm), "replay", workflow_id)
    assert shown.status == 0, shown.stderr
    assert '(question in iteration 1): "which colour?"' in shown.stdout
    assert 'answered over http: "blue"' in shown.stdout
    rerun_run = await tributary(cli_env(services.stack, **llm), "replay", workflow_id, "--rerun")

    assert rerun_run.status == 0, rerun_run.stdout + rerun_run.stderr
    lines = rerun_run.stdout.splitlines()
    assert lines[0] == "0 divergences"
    assert "gave 1 recorded input answer" in lines
    assert "workflow completed" in lines
    assert len(llm_admin.requests()) == requests  # the rerun asked no model, and no person
