"""Kafka topics: names, partition counts and which events travel on each.

Every event is keyed by its workflow id, so one workflow's events stay in order
within a topic. Partition counts bound how many replicas of a consumer group can
share the work; they are set explicitly at creation (see ``ALL_TOPICS``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    description: str


WORKFLOW_REQUESTS = TopicSpec(
    "tributary.workflow.requests",
    12,
    "Ingress: requests to start or cancel a workflow (gateway or integrations produce).",
)
STEPS = TopicSpec(
    "tributary.steps",
    24,
    "Steps dispatched by the planner, consumed by agent-runners.",
)
STEP_RESULTS = TopicSpec(
    "tributary.step.results",
    12,
    "Outcomes of steps (completed or failed), consumed by the synthesizer.",
)
WORKFLOW_EVENTS = TopicSpec(
    "tributary.workflow.events",
    12,
    "Egress: plan, progress and terminal events of every workflow, for integrations.",
)
WORKFLOW_CALLS = TopicSpec(
    "tributary.workflow.calls",
    12,
    "Egress: the record of every LLM and tool call of every workflow, for inspection and replay.",
)
DEAD_LETTERS = TopicSpec(
    "tributary.deadletter",
    3,
    "Messages that could not be processed, with the error and the original payload.",
)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    WORKFLOW_REQUESTS,
    STEPS,
    STEP_RESULTS,
    WORKFLOW_EVENTS,
    WORKFLOW_CALLS,
    DEAD_LETTERS,
)
