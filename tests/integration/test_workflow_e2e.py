"""A workflow from HTTP through Kafka to a synthesized answer, on real Kafka and Redis."""

from __future__ import annotations

import json

import pytest
from aiokafka import AIOKafkaConsumer

from tests.support.client import GatewayClient
from tests.support.stack import RunningServices
from tributary_scripted_llm import ScriptedLLMAdmin
from tributary_shared.core import topics

pytestmark = pytest.mark.integration


async def test_a_workflow_completes_and_its_progress_streams_over_sse(
    gateway: GatewayClient, marker: str
) -> None:
    workflow_id, events, state = await gateway.run(f"What is 12 * 12? {marker}")

    types = [event.type for event in events]
    assert types == [
        "workflow.requested",
        "plan.created",
        "step.dispatched",
        "step.started",
        "step.completed",
        "synthesis.started",
        "workflow.completed",
    ]
    assert all(event.data["workflow_id"] == workflow_id for event in events)
    assert len({event.id for event in events}) == len(events)

    assert state["status"] == "completed"
    [step] = state["steps"]
    assert step["status"] == "completed"
    assert "144" in step["result"]  # the calculator tool really ran
    assert "144" in state["result"]
    assert state["partial"] is False
    assert state["usage"]["total_tokens"] > 0
    assert state["usage"]["total_tokens"] >= step["usage"]["total_tokens"]
    assert events[-1].data["result"] == state["result"]


async def test_three_subtasks_run_and_their_events_are_readable_from_kafka(
    gateway: GatewayClient, services: RunningServices, marker: str
) -> None:
    task = f"Find the longest river {marker}; compute 2850 * 1.6; summarise the findings"
    workflow_id, events, state = await gateway.run(task)

    assert state["status"] == "completed"
    assert [s["step_id"] for s in state["steps"]] == ["s1", "s2", "s3"]
    assert all(s["status"] == "completed" for s in state["steps"])
    assert "4560" in state["steps"][1]["result"]
    for step in state["steps"]:
        assert step["title"] in state["result"]  # the synthesizer joined every result
    assert [e.type for e in events].count("step.completed") == 3

    # Integrations read the same events with any Kafka client.
    found = await _events_on_kafka(services, workflow_id)
    assert found[topics.WORKFLOW_REQUESTS.name] == ["workflow.requested"]
    assert found[topics.STEPS.name] == ["step.dispatched"] * 3
    assert found[topics.STEP_RESULTS.name] == ["step.completed"] * 3
    assert found[topics.WORKFLOW_EVENTS.name][0] == "plan.created"
    assert found[topics.WORKFLOW_EVENTS.name][-1] == "workflow.completed"
    assert found[topics.WORKFLOW_EVENTS.name].count("workflow.completed") == 1


async def _events_on_kafka(services: RunningServices, workflow_id: str) -> dict[str, list[str]]:
    """Event types of one workflow per topic, read from the start of every partition."""
    names = (
        topics.WORKFLOW_REQUESTS.name,
        topics.STEPS.name,
        topics.STEP_RESULTS.name,
        topics.WORKFLOW_EVENTS.name,
    )
    consumer = AIOKafkaConsumer(
        *names,
        bootstrap_servers=f"127.0.0.1:{services.stack.config.kafka_port}",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    found: dict[str, list[str]] = {}
    try:
        idle_polls = 0
        while idle_polls < 3:
            batch = await consumer.getmany(timeout_ms=1000)
            idle_polls = 0 if batch else idle_polls + 1
            for tp, records in batch.items():
                for record in records:
                    if record.key == workflow_id.encode():
                        found.setdefault(tp.topic, []).append(json.loads(record.value)["type"])
    finally:
        await consumer.stop()
    return found


async def test_a_stream_resumes_after_last_event_id(gateway: GatewayClient, marker: str) -> None:
    workflow_id, events, _ = await gateway.run(f"Say hello {marker}")
    resumed = await gateway.follow(workflow_id, last_event_id=events[2].id)
    assert [e.id for e in resumed] == [e.id for e in events[3:]]


async def test_an_idempotency_key_returns_the_first_workflow(
    gateway: GatewayClient, marker: str
) -> None:
    body = {"task": f"Say hello {marker}"}
    headers = {"Idempotency-Key": marker}
    first = await gateway.http.post("/v1/workflows", json=body, headers=headers)
    second = await gateway.http.post("/v1/workflows", json=body, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json()["workflow_id"] == second.json()["workflow_id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    await gateway.follow(first.json()["workflow_id"])
    other = await gateway.http.post(
        "/v1/workflows", json={"task": f"Something else {marker}"}, headers=headers
    )
    assert other.status_code == 422
    assert "already used for a different request" in other.json()["detail"]


async def test_a_step_that_fails_leaves_a_partial_answer(
    gateway: GatewayClient, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    llm_admin.add_rule(
        contains=marker,
        schema_name="tributary_plan",
        responses=[
            {
                "json": {
                    "steps": [
                        {"title": "Greet", "instruction": "Say hello"},
                        {"title": "Doomed", "instruction": f"Refuse this {marker}-doomed"},
                    ]
                }
            }
        ],
    )
    llm_admin.add_rule(
        contains=f"{marker}-doomed", responses=[{"refusal": "I cannot help with that"}]
    )
    _, events, state = await gateway.run(f"Two parts {marker}")
    assert state["status"] == "completed"
    assert state["partial"] is True
    doomed = state["steps"][1]
    assert doomed["status"] == "failed"
    assert doomed["error"] == {
        "code": "llm_refused",
        "message": "the model refused the request",
        "error_class": "model",
        "retryable": False,
    }
    assert "step.failed" in [e.type for e in events]


async def test_a_planner_that_cannot_reach_the_model_fails_the_workflow_clearly(
    gateway: GatewayClient, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    llm_admin.add_rule(
        contains=marker,
        responses=[{"status": 401, "error": {"message": "Incorrect API key: sk-abc...xyz"}}],
    )
    _, events, state = await gateway.run(f"Anything {marker}")
    assert state["status"] == "failed"
    assert state["error"]["code"] == "llm_auth_failed"
    assert state["error"]["message"] == "the LLM endpoint rejected the API key"
    assert events[-1].type == "workflow.failed"
    # Neither the provider's body nor the key reaches the user.
    assert "sk-abc" not in json.dumps(state)
    assert "test-key-not-secret" not in json.dumps([e.data for e in events])
