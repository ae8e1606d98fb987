"""Live token deltas across the real processes: ``mode=tokens`` on the events endpoint.

The scripted server paces its streamed chunks, so an agent's answer takes
seconds to arrive; a stream that follows the workflow's tokens receives that
answer's ``llm.delta`` events while it arrives, well before the step
completes, and joined they are the step's logged result. Deltas carry no SSE
id: a client that drops mid-answer and reconnects with ``Last-Event-ID``
gets every logged event after it exactly once, and the deltas of the gap are
not sent again. The services stream their LLM calls only because the
workflow's tokens are followed (``TRIBUTARY_LLM_STREAM`` is off for them).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.client import GatewayClient
from tributary_devstack.sse import SseParser
from tributary_scripted_llm import ScriptedLLMAdmin

pytestmark = pytest.mark.integration

CHUNK_DELAY_MS = 250
ANSWER = " ".join(f"word{index}" for index in range(32))  # 8 chunks of 4 words
SYNTHESIS = " ".join(f"final{index}" for index in range(24))  # 6 chunks


@dataclass(frozen=True)
class Received:
    at: float
    id: str | None
    type: str
    data: dict[str, Any]


async def read(
    gateway: GatewayClient,
    workflow_id: str,
    *,
    last_event_id: str | None = None,
    until_synthesis_delta: bool = False,
) -> list[Received]:
    """A ``mode=tokens`` stream's events with their arrival times, until it ends (or,
    when asked, until the synthesizer's first delta: the client drops mid-answer)."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    parser = SseParser()
    received: list[Received] = []
    async with gateway.http.stream(
        "GET",
        f"/v1/workflows/{workflow_id}/events",
        params={"mode": "tokens"},
        headers=headers,
        timeout=90,
    ) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            event = parser.feed(line)
            if event is None:
                continue
            data = json.loads(event.data)
            received.append(Received(time.monotonic(), event.id, event.event, data))
            synthesis_delta = event.event == "llm.delta" and data["role"] == "synthesizer"
            if until_synthesis_delta and synthesis_delta:
                break
    return received


def logged(events: list[Received]) -> list[tuple[str | None, str]]:
    return [(e.id, e.type) for e in events if e.type != "llm.delta"]


async def test_deltas_arrive_live_before_the_step_completes_and_resume_stays_on_the_log(
    gateway: GatewayClient, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    # Planning takes a moment, so the stream follows the tokens before any agent call.
    llm_admin.add_rule(
        contains=marker,
        schema_name="tributary_plan",
        responses=[
            {
                "delay_ms": 1000,
                "json": {"steps": [{"title": "Count", "instruction": f"count {marker}"}]},
            }
        ],
    )
    llm_admin.add_rule(
        contains=marker,
        has_tools=True,
        responses=[{"content": ANSWER, "stream_chunk_delay_ms": CHUNK_DELAY_MS}],
    )
    llm_admin.add_rule(
        contains=marker,
        has_tools=False,
        responses=[{"content": SYNTHESIS, "stream_chunk_delay_ms": CHUNK_DELAY_MS}],
    )
    workflow_id = await gateway.start(f"Count the words {marker}")

    first = await read(gateway, workflow_id, until_synthesis_delta=True)
    (completed,) = [e for e in first if e.type == "step.completed"]
    agent = [e for e in first if e.type == "llm.delta" and e.data["role"] == "agent"]
    assert agent, "no delta of the agent's answer arrived"
    assert all(e.id is None for e in first if e.type == "llm.delta")
    assert all(e.data["step_id"] == completed.data["step_id"] for e in agent)
    assert [e.data["seq"] for e in agent] == list(range(len(agent)))
    assert "".join(e.data["text"] for e in agent) == completed.data["result"] == ANSWER
    # Live: the answer trickled in over seconds, and its first text came long before
    # the step completed (not sent in one go once the call was over).
    assert all(e.at < completed.at for e in agent)
    assert completed.at - agent[0].at > 3 * CHUNK_DELAY_MS / 1000
    assert len(agent) >= 3

    # The client drops mid-synthesis and resumes after the last logged event it got.
    resume_after = logged(first)[-1][0]
    second = await read(gateway, workflow_id, last_event_id=resume_after)
    assert second[-1].type == "workflow.completed"
    whole = await read(gateway, workflow_id)
    assert logged(first) + logged(second) == logged(whole), "none missed, none repeated"

    synthesis_seen = [
        e.data["seq"]
        for e in first + second
        if e.type == "llm.delta" and e.data["role"] == "synthesizer"
    ]
    assert synthesis_seen == sorted(set(synthesis_seen)), "no delta is sent twice"
    assert all(e.id is None for e in second if e.type == "llm.delta")
    assert not [e for e in whole if e.type == "llm.delta"], "deltas are not in the log"

    asked = llm_admin.requests(contains=marker)
    assert [r.stream for r in asked if r.response_format is None] == [True, True]
