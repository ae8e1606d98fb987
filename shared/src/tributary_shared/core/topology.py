"""The topology: per service, the event types it consumes and emits, and its consumer group.

This is the one declaration of who talks to whom. Everything else follows it:

- each worker's ``WorkerSpec`` takes its group id and topics from ``subscription``;
- the AsyncAPI operations and docs/events.md are generated from ``ROLES``;
- the service table of docs/architecture.md is generated from ``ROLES``;
- the deploy files (Kubernetes Deployments, KEDA triggers, compose services) are
  written by hand and held to ``ROLES`` by one drift test (tests/unit/test_topology.py).

A consumer group subscribes to the home topics of the event types its service
consumes, so ``consumes`` decides the subscription; a topic's other event types
reach the group too, and the service ignores them.
"""

from __future__ import annotations

from dataclasses import dataclass

from tributary_shared.core.events import event_catalog, home_topic
from tributary_shared.core.topics import ALL_TOPICS, TopicSpec

__all__ = [
    "ROLES",
    "ServiceRole",
    "Subscription",
    "consumers_of",
    "dead_letter_senders",
    "deployed_roles",
    "emitters_of",
    "internal_roles",
    "relayed_types",
    "role_of",
    "subscribers_of",
    "subscription",
    "topic_of",
]


@dataclass(frozen=True, slots=True)
class ServiceRole:
    """One service's part in the event flow.

    A service with a consumer group also dead-letters what it cannot process.
    ``external`` marks producers outside Tributary (no image, no deployment),
    listed so that every event they put on a topic has a declared sender.
    """

    service: str
    does: str
    """One sentence for the architecture table: what the service is for."""
    emits: tuple[str, ...]
    consumes: tuple[str, ...] = ()
    group_id: str | None = None
    external: bool = False
    hosted_by: str | None = None
    """Runs in that service's process, with a consumer group of its own, instead of as a
    deployment of its own (no image, no Kubernetes Deployment, no KEDA trigger)."""
    relays: bool = False
    """Also re-publishes, with their own ids, events other services wrote to a
    workflow's log and never sent (the outbox sweep; see ``runtime.outbox``)."""

    def may_publish(self, event_type: str) -> bool:
        """Whether this service ever puts ``event_type`` on a topic."""
        return event_type in self.emits or (self.relays and event_type in relayed_types())

    @property
    def topics(self) -> tuple[TopicSpec, ...]:
        """The topics the consumer group subscribes to, in ``ALL_TOPICS`` order."""
        homes = {topic_of(event_type) for event_type in self.consumes}
        return tuple(topic for topic in ALL_TOPICS if topic in homes)

    @property
    def sends_dead_letters(self) -> bool:
        return self.group_id is not None


@dataclass(frozen=True, slots=True)
class Subscription:
    """What a worker's Kafka consumer joins: its group and the topics it reads."""

    group_id: str
    topics: tuple[str, ...]


ROLES: tuple[ServiceRole, ...] = (
    # Integrations produce onto the ingress topic directly; the planner accepts
    # their requests exactly like the gateway's.
    ServiceRole(
        service="integrations",
        does="systems outside Tributary that start, cancel and answer workflows through Kafka",
        emits=("workflow.requested", "workflow.cancel_requested", "input.submitted"),
        external=True,
    ),
    ServiceRole(
        service="gateway",
        does="HTTP API behind API keys: starts, lists, reads, streams (SSE), answers and "
        "cancels the workflows of the key's tenant; issues and revokes keys",
        # input.answered and what an answer sets off: the dispatch that resumes a step,
        # the step.failed of a rejected step, the workflow.failed of a rejected plan.
        emits=(
            "workflow.requested",
            "workflow.cancelled",
            "workflow.failed",
            "input.answered",
            "step.dispatched",
            "step.failed",
        ),
    ),
    ServiceRole(
        service="planner",
        does=(
            "plans with the LLM (structured output, validated, one corrective re-plan), "
            "dispatches root steps, releases dependent steps when their inputs complete, "
            "skips steps whose inputs failed, fails workflows past their deadline, "
            "cancels on `workflow.cancel_requested`, answers on `input.submitted`, expires "
            "input requests, sends again every event written "
            "to a workflow's log but never sent (the outbox)"
        ),
        group_id="tributary-planner",
        consumes=(
            "workflow.requested",
            "workflow.cancel_requested",
            "input.submitted",
            "step.completed",
            "step.failed",
        ),
        # step.dispatched also for dependents whose inputs completed; step.failed
        # for dependents of a failed step; workflow.failed for deadlines too. Its
        # outbox sweep re-sends any logged event whose publish never happened.
        emits=(
            "plan.created",
            "step.dispatched",
            "step.failed",
            "input.requested",
            "input.answered",
            "budget.exhausted",
            "llm.waiting",
            "llm.called",
            "call.payload",
            "workflow.cancelled",
            "workflow.failed",
        ),
        relays=True,
    ),
    ServiceRole(
        service="agent-runner",
        does=(
            "runs each step as an agent loop: LLM calls with tool calling, loop detection, "
            "budgets, iteration limit, deadline and cancellation checks; fails the workflow "
            "on fatal LLM errors and on a deadline passed while a call waited for the model"
        ),
        group_id="tributary-agent-runner",
        consumes=("step.dispatched",),
        # workflow.failed: fatal LLM errors and deadlines passed while a call waited
        # for its model, and the worker's dead-letter hook fails the workflow of an
        # event it had to give up on.
        emits=(
            "step.started",
            "step.completed",
            "step.failed",
            "input.requested",
            "budget.exhausted",
            "llm.waiting",
            "llm.called",
            "tool.called",
            "call.payload",
            "workflow.failed",
        ),
    ),
    ServiceRole(
        service="synthesizer",
        does=(
            "when every step has finished, writes the final answer (or a partial one); "
            "fails a workflow whose steps finished past its deadline"
        ),
        group_id="tributary-synthesizer",
        consumes=("step.completed", "step.failed"),
        # budget.exhausted and llm.waiting: every LLM-calling worker announces them
        # through WorkerResources.workflow_llms, when the workflow's budget refuses a
        # call or a call waits for its model. workflow.failed also for a workflow whose
        # steps finished past its deadline.
        emits=(
            "synthesis.started",
            "workflow.completed",
            "budget.exhausted",
            "llm.waiting",
            "llm.called",
            "call.payload",
            "workflow.failed",
        ),
    ),
    ServiceRole(
        service="callbacks",
        does=(
            "calls the `callback_url` of each workflow that ended: a signed POST, retried "
            "with backoff, each try recorded with the workflow; runs in the planner's process"
        ),
        group_id="tributary-callbacks",
        consumes=("workflow.completed", "workflow.failed", "workflow.cancelled"),
        emits=(),
        hosted_by="planner",
    ),
)


def role_of(service: str) -> ServiceRole:
    for role in ROLES:
        if role.service == service:
            return role
    raise LookupError(f"{service!r} is not a service of the topology")


def subscription(service: str) -> Subscription:
    """The consumer group and topic names a worker subscribes with."""
    role = role_of(service)
    if role.group_id is None:
        raise LookupError(f"{service} consumes nothing from Kafka; it has no consumer group")
    return Subscription(role.group_id, tuple(topic.name for topic in role.topics))


def deployed_roles() -> tuple[ServiceRole, ...]:
    """The services Tributary ships an image and a deployment for."""
    return tuple(role for role in ROLES if not role.external and role.hosted_by is None)


def internal_roles() -> tuple[ServiceRole, ...]:
    """Tributary's own services, those that run in another's process included."""
    return tuple(role for role in ROLES if not role.external)


def emitters_of(event_type: str) -> tuple[ServiceRole, ...]:
    return tuple(role for role in ROLES if event_type in role.emits)


def relayed_types() -> frozenset[str]:
    """What an outbox sweep may re-send: whatever Tributary's own services write."""
    return frozenset(t for role in ROLES if not role.external for t in role.emits)


def consumers_of(event_type: str) -> tuple[ServiceRole, ...]:
    return tuple(role for role in ROLES if event_type in role.consumes)


def subscribers_of(topic: TopicSpec) -> tuple[ServiceRole, ...]:
    """The services whose consumer group subscribes to ``topic``."""
    return tuple(role for role in ROLES if topic in role.topics)


def dead_letter_senders() -> tuple[ServiceRole, ...]:
    return tuple(role for role in ROLES if role.sends_dead_letters)


def topic_of(event_type: str) -> TopicSpec:
    """The home topic of an event type.

    ``home_topic`` takes an instance; ``model_construct`` builds one without
    validation, which is enough because only ``type`` is read.
    """
    event = event_catalog()[event_type].model_construct(type=event_type, workflow_id="")
    name = home_topic(event)
    for topic in ALL_TOPICS:
        if topic.name == name:
            return topic
    raise LookupError(f"{event_type} has home topic {name!r}, which is not in ALL_TOPICS")
