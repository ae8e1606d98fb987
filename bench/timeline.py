"""Where a workflow's time goes, from its event log in Redis.

Every event is appended to ``tributary:v1:wf:{id}:log``, a Redis stream whose
entry ids start with the millisecond (Redis' clock, the same host clock as the
client's ``time.time()``) at which it was appended. The gaps between the
milestones of the standard workflow, minus the LLM latency inside them, are
the orchestration's share of each phase.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from bench.driver import Sample
from bench.stats import summary
from tributary_shared.core.keys import WorkflowKeys

PHASES = (
    ("post_to_requested", "client POST sent -> workflow.requested logged (gateway)"),
    (
        "requested_to_plan",
        "workflow.requested -> plan.created, minus 1 LLM call (Kafka hop + planner)",
    ),
    ("plan_to_dispatch", "plan.created -> last step.dispatched (planner)"),
    ("dispatch_to_start", "step.dispatched -> step.started, per step (Kafka hop + agent-runner)"),
    ("step_run", "step.started -> step.completed minus 2 LLM calls, per step (agent-runner)"),
    ("steps_to_synthesis", "last step.completed -> synthesis.started (Kafka hop + synthesizer)"),
    ("synthesis", "synthesis.started -> workflow.completed, minus 1 LLM call (synthesizer)"),
    ("completed_to_client", "workflow.completed logged -> terminal event at the client (SSE)"),
)


async def read_logs(redis_url: str, workflow_ids: Sequence[str]) -> dict[str, list[Any]]:
    redis = Redis.from_url(redis_url)
    try:
        out: dict[str, list[Any]] = {}
        for start in range(0, len(workflow_ids), 200):
            chunk = workflow_ids[start : start + 200]
            async with redis.pipeline(transaction=False) as pipe:
                for workflow_id in chunk:
                    pipe.xrange(WorkflowKeys(workflow_id).log)
                rows: list[Any] = await pipe.execute()
            out.update(zip(chunk, rows, strict=True))
        return out
    finally:
        await redis.aclose()


def _events(entries: list[Any]) -> list[tuple[float, str, str | None]]:
    """(seconds since the epoch, type, step id) per log entry."""
    out = []
    for stream_id, fields in entries:
        ms = int(stream_id.decode().split("-", 1)[0])
        kind = fields[b"type"].decode()
        step = None
        if kind.startswith("step."):
            event = json.loads(fields[b"event"])
            nested = event.get("step")
            step = event.get("step_id") or (nested.get("step_id") if nested else None)
        out.append((ms / 1000.0, kind, step))
    return out


def phases(sample: Sample, entries: list[Any], llm_s: float) -> dict[str, Any] | None:
    events = _events(entries)

    def first(kind: str) -> float | None:
        return next((t for t, k, _ in events if k == kind), None)

    def last(kind: str) -> float | None:
        found = [t for t, k, _ in events if k == kind]
        return found[-1] if found else None

    requested, plan = first("workflow.requested"), first("plan.created")
    dispatched_last, completed_last = last("step.dispatched"), last("step.completed")
    synthesis, done = first("synthesis.started"), first("workflow.completed")
    e2e = sample.e2e()
    if (
        requested is None
        or plan is None
        or dispatched_last is None
        or completed_last is None
        or synthesis is None
        or done is None
        or e2e is None
    ):
        return None
    steps: dict[str, dict[str, float]] = {}
    for t, kind, step in events:
        if step is not None:
            steps.setdefault(step, {}).setdefault(kind, t)
    per_step_start = [
        s["step.started"] - s["step.dispatched"]
        for s in steps.values()
        if "step.started" in s and "step.dispatched" in s
    ]
    per_step_run = [
        s["step.completed"] - s["step.started"] - 2 * llm_s
        for s in steps.values()
        if "step.completed" in s and "step.started" in s
    ]
    return {
        "post_to_requested": requested - sample.post_wall,
        "requested_to_plan": plan - requested - llm_s,
        "plan_to_dispatch": dispatched_last - plan,
        "dispatch_to_start": per_step_start,
        "step_run": per_step_run,
        "steps_to_synthesis": synthesis - completed_last,
        "synthesis": done - synthesis - llm_s,
        "completed_to_client": sample.post_wall + e2e - done,
    }


def breakdown(
    samples: Sequence[Sample], logs: dict[str, list[Any]], llm_s: float
) -> dict[str, Any]:
    """Per phase: summary (seconds) over all workflows (per step for step phases)."""
    values: dict[str, list[float]] = {name: [] for name, _ in PHASES}
    used = 0
    for sample in samples:
        if sample.workflow_id is None or sample.status != "completed":
            continue
        found = phases(sample, logs.get(sample.workflow_id, []), llm_s)
        if found is None:
            continue
        used += 1
        for name, value in found.items():
            if isinstance(value, list):
                values[name].extend(value)
            else:
                values[name].append(value)
    return {
        "workflows": used,
        "phases": {name: {"what": what, **summary(values[name])} for name, what in PHASES},
    }
