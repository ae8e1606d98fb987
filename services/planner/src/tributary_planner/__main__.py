"""Entry point: ``python -m tributary_planner``."""

from __future__ import annotations

from tributary_planner.service import Planner
from tributary_planner.settings import PlannerSettings
from tributary_shared.llm import LLMClient
from tributary_shared.settings import LLMSettings, load_settings
from tributary_shared.topics import WORKFLOW_REQUESTS
from tributary_shared.worker import WorkerResources, WorkerSpec, run_worker


def build(resources: WorkerResources) -> Planner:
    return Planner(
        resources,
        llm=LLMClient(load_settings(LLMSettings)),
        settings=load_settings(PlannerSettings),
    )


SPEC = WorkerSpec(
    service="planner",
    group_id="tributary-planner",
    topics=(WORKFLOW_REQUESTS.name,),
    build=build,
)

if __name__ == "__main__":
    run_worker(SPEC)
