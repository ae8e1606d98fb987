"""Who sends and who receives each event type: the one table that says so.

The services' code decides what they publish; this table is the declared view
of it that the documents are generated from. A unit test holds it to the
services' real consumer specs (group ids and subscribed topics) and to the event
catalog, so a new event type or a changed subscription cannot go undocumented.
"""

from __future__ import annotations

from dataclasses import dataclass

from tributary_devtools.contract.topology import topic_of
from tributary_shared.core.topics import ALL_TOPICS, TopicSpec


@dataclass(frozen=True, slots=True)
class ServiceRole:
    """One service's part in the event flow.

    ``receives`` lists the event types the service acts on; its consumer group
    subscribes to their home topics. A service with a consumer group also
    dead-letters what it cannot process.
    """

    service: str
    sends: tuple[str, ...]
    receives: tuple[str, ...] = ()
    group_id: str | None = None

    @property
    def topics(self) -> tuple[TopicSpec, ...]:
        """The topics the consumer group subscribes to, in ``ALL_TOPICS`` order."""
        homes = {topic_of(event_type) for event_type in self.receives}
        return tuple(topic for topic in ALL_TOPICS if topic in homes)

    @property
    def sends_dead_letters(self) -> bool:
        return self.group_id is not None


# budget.exhausted: every LLM-calling worker announces it through
# WorkerResources.workflow_llms when the workflow's budget refuses a call.
ROLES: tuple[ServiceRole, ...] = (
    # Integrations produce onto the ingress topic directly; the planner accepts
    # their requests exactly like the gateway's.
    ServiceRole(service="integrations", sends=("workflow.requested", "workflow.cancel_requested")),
    ServiceRole(service="gateway", sends=("workflow.requested", "workflow.cancelled")),
    ServiceRole(
        service="planner",
        group_id="tributary-planner",
        receives=(
            "workflow.requested",
            "workflow.cancel_requested",
            "step.completed",
            "step.failed",
        ),
        # step.dispatched also for dependents whose inputs completed; step.failed
        # for dependents of a failed step; workflow.failed for deadlines too.
        sends=(
            "plan.created",
            "step.dispatched",
            "step.failed",
            "budget.exhausted",
            "workflow.cancelled",
            "workflow.failed",
        ),
    ),
    ServiceRole(
        service="agent-runner",
        group_id="tributary-agent-runner",
        receives=("step.dispatched",),
        # workflow.failed: fatal LLM errors, and the worker's dead-letter hook
        # fails the workflow of an event it had to give up on.
        sends=(
            "step.started",
            "step.completed",
            "step.failed",
            "budget.exhausted",
            "workflow.failed",
        ),
    ),
    ServiceRole(
        service="synthesizer",
        group_id="tributary-synthesizer",
        receives=("step.completed", "step.failed"),
        sends=("synthesis.started", "workflow.completed", "budget.exhausted", "workflow.failed"),
    ),
)


def senders(event_type: str) -> tuple[ServiceRole, ...]:
    return tuple(role for role in ROLES if event_type in role.sends)


def receivers(event_type: str) -> tuple[ServiceRole, ...]:
    return tuple(role for role in ROLES if event_type in role.receives)


def consumers_of(topic: TopicSpec) -> tuple[ServiceRole, ...]:
    """The services whose consumer group subscribes to ``topic``."""
    return tuple(role for role in ROLES if topic in role.topics)


def dead_letter_senders() -> tuple[ServiceRole, ...]:
    return tuple(role for role in ROLES if role.sends_dead_letters)
