"""The LLM-client bound: the standard workflow's 8 LLM calls from one process,
through the real ``openai.AsyncOpenAI`` client, with no orchestration at all.

Per workflow: the planner's structured call, then for each of the 3 steps a
call offering the tools (answered with a calculator call), the calculator run
in-process and a second call with its result, then the synthesis call. The
messages are built by the services' own prompt functions, so the requests and
replies match what the stack sends. No Kafka, no Redis, no budget ledger.
Workflows run closed-loop, ``concurrency`` at a time, for ``duration_s``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx2
from openai import AsyncOpenAI, DefaultAsyncHttpxClient

from bench import procstat
from bench.driver import STANDARD_TASK
from tributary_agent_runner.__main__ import builtin_tools
from tributary_agent_runner.loop import step_messages
from tributary_agent_runner.settings import AgentSettings
from tributary_planner.planning import (
    PLAN_SCHEMA_NAME,
    PlanDraft,
    planned_steps,
    planning_messages,
)
from tributary_planner.settings import PlannerSettings
from tributary_shared.core.records import StepRecord
from tributary_shared.core.status import StepStatus
from tributary_shared.runtime.llm.structured import json_schema_format
from tributary_shared.runtime.settings import LLMSettings
from tributary_synthesizer.synthesis import synthesis_messages


@dataclass
class ClientBoundResult:
    workflows: int
    llm_calls: int
    seconds: float
    client_cpu_s: float
    llm_cpu_s: float | None
    machine_cpu_s: float
    errors: int

    @property
    def workflows_per_s(self) -> float:
        return self.workflows / self.seconds


class StandardWorkflowCalls:
    """The 8 calls of one standard workflow, made directly."""

    def __init__(self, base_url: str, *, max_connections: int = 1000) -> None:
        settings = LLMSettings()
        self.model = settings.planner_model
        self.max_tokens = settings.max_completion_tokens
        self.max_steps = PlannerSettings().max_steps
        self.tools = builtin_tools(AgentSettings())
        self.schemas = self.tools.openai_schemas()
        self.plan_format = json_schema_format(PlanDraft, PLAN_SCHEMA_NAME)
        self.client = AsyncOpenAI(
            base_url=base_url,
            api_key="bench-key-not-secret",
            max_retries=0,
            timeout=settings.timeout_s,
            http_client=DefaultAsyncHttpxClient(
                limits=httpx2.Limits(
                    max_connections=max_connections, max_keepalive_connections=max_connections
                ),
                timeout=settings.timeout_s,
            ),
        )
        self.calls = 0

    async def close(self) -> None:
        await self.client.close()

    async def _create(self, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        self.calls += 1
        return await self.client.chat.completions.create(
            model=self.model,
            messages=messages,  # type: ignore[arg-type]
            max_tokens=self.max_tokens,
            **kwargs,
        )

    async def workflow(self, task: str) -> str:
        plan_reply = await self._create(
            planning_messages(task, max_steps=self.max_steps), response_format=self.plan_format
        )
        draft = PlanDraft.model_validate_json(plan_reply.choices[0].message.content or "")
        steps = planned_steps(draft)
        results = await asyncio.gather(*(self._step(step, task) for step in steps))
        records = [
            StepRecord(
                step_id=step.step_id,
                index=step.index,
                title=step.title,
                instruction=step.instruction,
                status=StepStatus.COMPLETED,
                result=result,
            )
            for step, result in zip(steps, results, strict=True)
        ]
        final = await self._create(synthesis_messages(task, records))
        return str(final.choices[0].message.content or "")

    async def _step(self, step: Any, task: str) -> str:
        messages: list[dict[str, Any]] = step_messages(step, task)
        for _ in range(4):
            reply = await self._create(messages, tools=self.schemas)
            message = reply.choices[0].message
            if not message.tool_calls:
                return str(message.content or "")
            messages.append(
                {
                    "role": "assistant",
                    "content": message.content,
                    "tool_calls": [
                        {
                            "id": call.id,
                            "type": "function",
                            "function": {
                                "name": call.function.name,
                                "arguments": call.function.arguments,
                            },
                        }
                        for call in message.tool_calls
                    ],
                }
            )
            for call in message.tool_calls:
                output = await self.tools.get(call.function.name).invoke(call.function.arguments)
                messages.append({"role": "tool", "tool_call_id": call.id, "content": output})
        raise RuntimeError("the step did not finish within 4 calls")


async def measure(
    base_url: str,
    *,
    concurrency: int,
    duration_s: float,
    warmup_s: float,
    llm_pid: int | None,
    task: str = STANDARD_TASK,
) -> ClientBoundResult:
    calls = StandardWorkflowCalls(base_url)
    done = 0
    errors = 0
    counting = False
    stop_at = 0.0

    async def worker() -> None:
        nonlocal done, errors
        while time.monotonic() < stop_at:
            try:
                await calls.workflow(task)
            except Exception:
                errors += 1
                await asyncio.sleep(0.05)
                continue
            if counting:
                done += 1

    try:
        loop_start = time.monotonic()
        stop_at = loop_start + warmup_s + duration_s
        workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
        await asyncio.sleep(warmup_s)
        counting = True
        calls_before = calls.calls
        me_before = procstat.sample(os.getpid())
        llm_before = procstat.sample(llm_pid) if llm_pid else None
        machine_before = procstat.machine_cpu_s()
        started = time.monotonic()
        await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
        counting = False
        elapsed = time.monotonic() - started
        me_after = procstat.sample(os.getpid())
        llm_after = procstat.sample(llm_pid) if llm_pid else None
        machine_cpu = procstat.machine_cpu_s() - machine_before
        llm_calls = calls.calls - calls_before
        await asyncio.gather(*workers, return_exceptions=True)
    finally:
        await calls.close()
    assert me_before is not None
    assert me_after is not None
    llm_cpu = (
        llm_after.cpu_s - llm_before.cpu_s
        if llm_before is not None and llm_after is not None
        else None
    )
    return ClientBoundResult(
        workflows=done,
        llm_calls=llm_calls,
        seconds=elapsed,
        client_cpu_s=me_after.cpu_s - me_before.cpu_s,
        llm_cpu_s=llm_cpu,
        machine_cpu_s=machine_cpu,
        errors=errors,
    )


def describe(result: ClientBoundResult) -> dict[str, Any]:
    return {
        "workflows": result.workflows,
        "llm_calls": result.llm_calls,
        "seconds": round(result.seconds, 3),
        "workflows_per_s": round(result.workflows_per_s, 2),
        "llm_calls_per_workflow": round(result.llm_calls / max(result.workflows, 1), 2),
        "client_cpu_s_per_workflow": result.client_cpu_s / max(result.workflows, 1),
        "llm_server_cpu_s_per_workflow": (
            None if result.llm_cpu_s is None else result.llm_cpu_s / max(result.workflows, 1)
        ),
        "cores_busy_client": round(result.client_cpu_s / result.seconds, 3),
        "cores_busy_machine": round(result.machine_cpu_s / result.seconds, 3),
        "other_processes_cpu_s": round(
            result.machine_cpu_s - result.client_cpu_s - (result.llm_cpu_s or 0.0), 3
        ),
        "errors": result.errors,
    }


def dumps(result: ClientBoundResult) -> str:
    return json.dumps(describe(result), indent=2)


async def open_loop_e2e(
    base_url: str,
    *,
    rate: float,
    duration_s: float,
    poisson: bool = True,
    seed: int = 7,
    task: str = STANDARD_TASK,
) -> tuple[list[float], int]:
    """End-to-end seconds of each bare-client workflow started on the latency scenario's
    schedule (the same seeded arrivals the stack gets), and how many failed."""
    calls = StandardWorkflowCalls(base_url)
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    e2e: list[float] = []
    failed = 0

    async def one() -> None:
        nonlocal failed
        began = time.monotonic()
        try:
            await calls.workflow(task)
        except Exception:
            failed += 1
            return
        e2e.append(time.monotonic() - began)

    running: list[asyncio.Task[None]] = []
    try:
        start, offset = loop.time(), 0.0
        while True:
            offset += rng.expovariate(rate) if poisson else 1.0 / rate
            if offset > duration_s:
                break
            await asyncio.sleep(max(0.0, start + offset - loop.time()))
            running.append(asyncio.create_task(one()))
        await asyncio.gather(*running)
    finally:
        await calls.close()
    return e2e, failed
