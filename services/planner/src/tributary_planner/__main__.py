"""Entry point: ``python -m tributary_planner``."""

from __future__ import annotations

from tributary_planner.callbacks import CALLBACKS_SPEC
from tributary_planner.service import Planner
from tributary_planner.settings import PlannerSettings
from tributary_shared.core.topology import subscription
from tributary_shared.runtime import failpoints
from tributary_shared.runtime.settings import BudgetSettings, WorkflowDefaults, load_settings
from tributary_shared.runtime.worker import WorkerResources, WorkerSpec, run_worker


def build(resources: WorkerResources) -> Planner:
    failpoints.arm(load_settings(failpoints.FailpointSettings).armed)  # tests only; empty else
    return Planner(
        resources.ports,
        llms=resources.workflow_llms(),
        settings=load_settings(PlannerSettings),
        budgets=load_settings(BudgetSettings),
        defaults=load_settings(WorkflowDefaults),
    )


SERVICE = "planner"
# Group and topics as the topology declares them (tributary_shared.core.topology).
SUBSCRIPTION = subscription(SERVICE)
SPEC = WorkerSpec(
    service=SERVICE,
    group_id=SUBSCRIPTION.group_id,
    topics=SUBSCRIPTION.topics,
    build=build,
    # Workflow callbacks are delivered from the planner's process (the topology's
    # ``hosted_by``), under their own consumer group.
    hosts=(CALLBACKS_SPEC,),
)

if __name__ == "__main__":
    run_worker(SPEC)
