"""Entry point: ``python -m tributary_agent_runner``."""

from __future__ import annotations

from tributary_agent_runner.service import AgentRunner
from tributary_agent_runner.settings import AgentSettings
from tributary_agent_runner.tools.calculator import calculator_tool
from tributary_agent_runner.tools.registry import ToolRegistry
from tributary_shared.events import AnyEvent, StepDispatched
from tributary_shared.llm import LLMClient
from tributary_shared.settings import LLMSettings, load_settings
from tributary_shared.topics import STEPS
from tributary_shared.worker import WorkerResources, WorkerSpec, run_worker


def step_lane(event: AnyEvent) -> bytes:
    """Steps of one workflow run in parallel; one step's deliveries never overlap."""
    step_id = event.step.step_id if isinstance(event, StepDispatched) else ""
    return f"{event.workflow_id}/{step_id}".encode()


def build(resources: WorkerResources) -> AgentRunner:
    return AgentRunner(
        resources,
        llm=LLMClient(load_settings(LLMSettings)),
        tools=ToolRegistry([calculator_tool]),
        settings=load_settings(AgentSettings),
    )


SPEC = WorkerSpec(
    service="agent-runner",
    group_id="tributary-agent-runner",
    topics=(STEPS.name,),
    build=build,
    lane_of=step_lane,
)

if __name__ == "__main__":
    run_worker(SPEC)
