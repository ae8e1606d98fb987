"""Entry point: ``python -m tributary_planner``."""

from __future__ import annotations

from tributary_planner.service import Planner
from tributary_planner.settings import PlannerSettings
from tributary_shared.core.topics import STEP_RESULTS, WORKFLOW_REQUESTS
from tributary_shared.runtime.settings import BudgetSettings, WorkflowDefaults, load_settings
from tributary_shared.runtime.worker import WorkerResources, WorkerSpec, run_worker


def build(resources: WorkerResources) -> Planner:
    return Planner(
        resources,
        llms=resources.workflow_llms(),
        settings=load_settings(PlannerSettings),
        budgets=load_settings(BudgetSettings),
        defaults=load_settings(WorkflowDefaults),
    )


SPEC = WorkerSpec(
    service="planner",
    group_id="tributary-planner",
    topics=(WORKFLOW_REQUESTS.name, STEP_RESULTS.name),
    build=build,
)

if __name__ == "__main__":
    run_worker(SPEC)
