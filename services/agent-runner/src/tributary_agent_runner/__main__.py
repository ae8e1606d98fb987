"""Entry point: ``python -m tributary_agent_runner``."""

from __future__ import annotations

from typing import Any

from tributary_agent_runner.service import AgentRunner
from tributary_agent_runner.settings import AgentSettings
from tributary_agent_runner.tools.ask_human import ask_human_tool
from tributary_agent_runner.tools.calculator import calculator_tool
from tributary_agent_runner.tools.cpu_pool import CpuPool
from tributary_agent_runner.tools.fetch_url import make_fetch_url_tool
from tributary_agent_runner.tools.html_converter import HtmlConverter
from tributary_agent_runner.tools.mcp_tools import McpToolset
from tributary_agent_runner.tools.registry import Tool, ToolRegistry
from tributary_agent_runner.tools.web_search import web_search_tool_from_settings
from tributary_shared.core.events import AnyEvent, StepDispatched
from tributary_shared.core.netguard import address_and_port, allow_exact
from tributary_shared.core.topology import subscription
from tributary_shared.runtime import failpoints
from tributary_shared.runtime.settings import ConsumerSettings, WorkflowDefaults, load_settings
from tributary_shared.runtime.worker import WorkerResources, WorkerSpec, run_worker


def step_lane(event: AnyEvent) -> bytes:
    """Steps of one workflow run in parallel; one step's deliveries never overlap."""
    step_id = event.step.step_id if isinstance(event, StepDispatched) else ""
    return f"{event.workflow_id}/{step_id}".encode()


def builtin_tools(settings: AgentSettings) -> ToolRegistry:
    """Calculator, fetch_url and ask_human always; web_search when a provider is
    configured."""
    html = HtmlConverter(
        CpuPool(processes=settings.tool_worker_processes),
        timeout_s=settings.html_to_text_timeout_s,
    )
    policy = allow_exact(*map(address_and_port, settings.fetch_url_allowed_targets))
    fetch_url = make_fetch_url_tool(policy=policy, html_to_text=html)
    tools: list[Tool[Any]] = [calculator_tool, fetch_url, ask_human_tool]
    search = web_search_tool_from_settings()
    if search is not None:
        tools.append(search)
    return ToolRegistry(tools, timeouts=settings.tool_timeouts)


def build(resources: WorkerResources) -> AgentRunner:
    failpoints.arm(load_settings(failpoints.FailpointSettings).armed)  # tests only; empty else
    settings = load_settings(AgentSettings)
    tools = builtin_tools(settings)
    return AgentRunner(
        resources.ports,
        llms=resources.workflow_llms(),
        tools=tools,
        mcp=McpToolset.from_env(tools),  # adds the MCP servers' tools to the registry
        settings=settings,
        defaults=load_settings(WorkflowDefaults),
        outage_patience_s=load_settings(ConsumerSettings).outage_patience_s,
    )


SERVICE = "agent-runner"
# Group and topics as the topology declares them (tributary_shared.core.topology).
SUBSCRIPTION = subscription(SERVICE)
SPEC = WorkerSpec(
    service=SERVICE,
    group_id=SUBSCRIPTION.group_id,
    topics=SUBSCRIPTION.topics,
    build=build,
    lane_of=step_lane,
)

if __name__ == "__main__":
    run_worker(SPEC)
