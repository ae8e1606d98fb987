"""What Prometheus scrapes from the running stack after a workflow, and that it lints clean.

Every service's /metrics body (the gateway's on its metrics port) passes
``promtool check metrics``; after a workflow the agent-runner's step durations
counted its steps, every worker's handlers in progress are back to 0, each
consumer group reports lag for its partitions (and is caught up), and each
LLM-calling service counted tokens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.client import GatewayClient
from tests.support.promtool import run_promtool
from tests.support.stack import RunningServices
from tributary_shared.core.topology import subscription

pytestmark = pytest.mark.integration

WORKERS = ("planner", "agent-runner", "synthesizer")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def url_of(services: RunningServices, name: str) -> str:
    if name == "gateway":
        return services.gateway_metrics_url
    return f"http://127.0.0.1:{services.process(name).port}/metrics"


async def scrape(http: httpx.AsyncClient, services: RunningServices, name: str) -> str:
    answer = await http.get(url_of(services, name))  # the gateway's redirects to /metrics/
    answer.raise_for_status()
    return answer.text


def samples(body: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def total(found: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(value for (n, have), value in found.items() if n == name and wanted <= have)


def series(found: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for (n, labels) in found if n == name]


async def eventually(
    http: httpx.AsyncClient,
    services: RunningServices,
    check: Callable[[Mapping[str, Samples]], str | None],
    *,
    within_s: float = 90.0,
) -> None:
    """Scrape every worker until ``check`` finds nothing wrong (it returns what is)."""
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        scraped = {name: samples(await scrape(http, services, name)) for name in WORKERS}
        problem = check(scraped)
        if problem is None:
            return
        assert asyncio.get_running_loop().time() < deadline, problem
        await asyncio.sleep(0.5)


async def test_every_service_exports_lint_clean_metrics_that_move_with_a_workflow(
    gateway: GatewayClient, services: RunningServices, marker: str
) -> None:
    async with httpx.AsyncClient(timeout=10, follow_redirects=True) as http:
        before = {name: samples(await scrape(http, services, name)) for name in WORKERS}
        _, _, state = await gateway.run(f"compute 2 + 2 {marker}; compute 3 + 3")
        assert state["status"] == "completed", state
        steps = len(state["steps"])
        assert steps >= 1

        def settled(now: Mapping[str, Samples]) -> str | None:
            runner, was = now["agent-runner"], before["agent-runner"]
            done = total(runner, "step_duration_seconds_count", outcome="completed")
            if done - total(was, "step_duration_seconds_count", outcome="completed") < steps:
                return f"step_duration_seconds counted {done} completed steps"
            for name in WORKERS:
                busy = {
                    kind: total(now[name], "handlers_in_progress", kind=kind)
                    for kind in ("event", "workflow", "step")
                }
                if any(busy.values()) or not series(now[name], "handlers_in_progress"):
                    return f"{name} handlers in progress: {busy}"
                group = subscription(name).group_id
                lags = [
                    labels
                    for labels in series(now[name], "consumer_lag_records")
                    if labels["consumer"] == group
                ]
                topics = {labels["topic"] for labels in lags}
                if topics != set(subscription(name).topics):
                    return f"{name} reports lag for {sorted(topics)}"
                lag = total(now[name], "consumer_lag_records", consumer=group)
                if lag:
                    return f"{group} lags {lag} records"
                if total(now[name], "llm_tokens_total") <= total(before[name], "llm_tokens_total"):
                    return f"{name} counted no tokens"
            return None

        await eventually(http, services, settled)

        for name in ("gateway", *WORKERS):
            body = await scrape(http, services, name)
            checked = run_promtool("check", "metrics", stdin=body)
            assert checked.returncode == 0, (name, checked.stdout, checked.stderr)
            assert checked.stdout.strip() == "", (name, checked.stdout)
