"""What operators rely on: JSON logs tagged with the workflow, metrics on every service."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.client import GatewayClient
from tests.support.stack import RunningServices

pytestmark = pytest.mark.integration


async def test_every_log_line_about_a_workflow_carries_its_id(
    gateway: GatewayClient, services: RunningServices, marker: str
) -> None:
    workflow_id, _, _ = await gateway.run(f"compute 2 + 2 {marker}; compute 3 + 3")
    tagged = 0
    for name in ("gateway", "planner", "agent-runner", "synthesizer"):
        for line in services.process(name).log_path.read_text().splitlines():
            if workflow_id not in line:
                continue
            entry = json.loads(line)  # every line is JSON
            assert entry["workflow_id"] == workflow_id, entry
            tagged += 1
    assert tagged >= 4


async def test_workers_serve_health_and_the_documented_metrics(
    gateway: GatewayClient, services: RunningServices, marker: str
) -> None:
    await gateway.run(f"compute 5 + 5 {marker}")
    expected = {
        "planner": ["llm_tokens_total", "llm_request_seconds"],
        "agent-runner": ["agent_iterations_count", "llm_tokens_total", "tool_call_errors_total"],
        "synthesizer": ["workflow_duration_seconds", "workflow_status_total"],
    }
    async with httpx.AsyncClient(timeout=10) as http:
        for name, metrics in expected.items():
            proc = services.process(name)
            health = await http.get(f"http://127.0.0.1:{proc.port}/health")
            assert health.status_code == 200
            assert health.json()["status"] == "ok"
            body = (await http.get(f"http://127.0.0.1:{proc.port}/metrics")).text
            for metric in metrics:
                declared = (f"# TYPE {metric} ", f"# TYPE {metric.removesuffix('_total')} ")
                assert any(line in body for line in declared), (name, metric)
        tokens = (
            await http.get(f"http://127.0.0.1:{services.process('agent-runner').port}/metrics")
        ).text
        assert (
            'llm_tokens_total{deployment="gpt-4o-mini",kind="prompt",model="gpt-4o-mini",role="agent"}'
            in tokens
        )
