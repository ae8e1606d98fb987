"""The Redis adapter for workflow state and the per-workflow event log.

Every state change is one atomic program (``atomic.lua``): it checks the
expected current status, writes the new state and appends the events it
implies to the workflow's log stream, all or nothing. Impossible transitions
(a step result after the workflow ended, a second final result) are refused
with ``TransitionConflict`` and change nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from redis.asyncio import Redis

from tributary_shared.core.events import (
    Complexity,
    PlanCreated,
    PlannedStep,
    StepCompleted,
    StepDispatched,
    StepFailed,
    StepStarted,
    SynthesisStarted,
    TokenUsage,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowRequested,
    utc_now,
)
from tributary_shared.core.keys import DEADLINES_KEY, WorkflowKeys, idempotency_key
from tributary_shared.core.status import ACTIVE_WORKFLOW_STATUSES, StepStatus, WorkflowStatus
from tributary_shared.runtime.state.program import (
    STEPS,
    WF,
    Program,
    step_data_field,
    step_event_field,
    step_status_field,
)

_LUA = resources.files("tributary_shared.runtime.state").joinpath("atomic.lua").read_text()


class IdempotencyKeyReused(Exception):
    """The Idempotency-Key was first used for a different request."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"the key was first used for workflow {workflow_id}")
        self.workflow_id = workflow_id


def request_fingerprint(event: WorkflowRequested) -> str:
    body = json.dumps(
        {"task": event.task, "options": event.options.model_dump(mode="json")}, sort_keys=True
    )
    return hashlib.sha256(body.encode()).hexdigest()[:32]


class TransitionConflict(Exception):
    """The state was not what the transition expected; nothing was written."""

    def __init__(self, field_name: str, actual: str) -> None:
        super().__init__(f"{field_name} is {actual or '<absent>'!r}")
        self.field_name = field_name
        self.actual = actual


@dataclass(frozen=True)
class StepRecord:
    step_id: str
    index: int
    title: str
    instruction: str
    status: StepStatus
    result: str | None = None
    error: dict[str, Any] | None = None
    iterations: int = 0
    attempt: int = 0
    usage: TokenUsage = field(default_factory=TokenUsage)
    models: tuple[str, ...] = ()
    complexity: Complexity = "medium"
    depends_on: tuple[str, ...] = ()
    terminal_event: str | None = None

    def as_planned(self) -> PlannedStep:
        return PlannedStep(
            step_id=self.step_id,
            index=self.index,
            title=self.title,
            instruction=self.instruction,
            complexity=self.complexity,
            depends_on=self.depends_on,
        )


@dataclass(frozen=True)
class WorkflowRecord:
    workflow_id: str
    tenant_id: str
    status: WorkflowStatus
    task: str
    created_at: str
    updated_at: str
    options: dict[str, Any]
    steps: tuple[StepRecord, ...]
    steps_total: int
    steps_finished: int
    result: str | None
    partial: bool
    error: dict[str, Any] | None
    usage: TokenUsage
    final_event: str | None
    deadline_at: float | None = None

    @property
    def all_steps_finished(self) -> bool:
        return self.steps_total > 0 and self.steps_finished >= self.steps_total


@dataclass(frozen=True)
class LogEntry:
    stream_id: str
    type: str
    event_json: str


class WorkflowStore:
    def __init__(self, redis: Redis, *, retention_s: int) -> None:
        self._redis = redis
        self._retention_s = retention_s
        self._atomic = redis.register_script(_LUA)

    async def _run(self, workflow_id: str, program: Program) -> list[Any]:
        keys = WorkflowKeys(workflow_id).all()
        raw = await self._atomic(keys=list(keys), args=[json.dumps(program.as_dict())])
        outcome = json.loads(raw)
        if not outcome["ok"]:
            raise TransitionConflict(outcome["f"], outcome["actual"])
        results = outcome.get("r") or []
        return list(results) if isinstance(results, list) else []

    # -- gateway --------------------------------------------------------------

    async def create_workflow(
        self,
        event: WorkflowRequested,
        *,
        deadline_at: float,
        idempotency_key_value: str | None = None,
    ) -> str | None:
        """Record a new workflow. With an idempotency key already used, return its workflow id.

        Raises ``IdempotencyKeyReused`` when the key was used for a different request.
        """
        if idempotency_key_value is not None:
            key = idempotency_key(event.tenant_id, idempotency_key_value)
            request = request_fingerprint(event)
            claimed = await self._redis.set(
                key, f"{event.workflow_id} {request}", nx=True, ex=self._retention_s
            )
            if not claimed:
                existing = _text(await self._redis.get(key) or b"")
                workflow_id, _, first_request = existing.partition(" ")
                if first_request != request:
                    raise IdempotencyKeyReused(workflow_id)
                return workflow_id
        now = event.occurred_at.isoformat()
        program = (
            Program()
            .expect_field(WF, "status", [""])
            .hset(
                WF,
                {
                    "status": WorkflowStatus.PENDING,
                    "tenant_id": event.tenant_id,
                    "task": event.task,
                    "options": event.options.model_dump_json(),
                    "created_at": now,
                    "updated_at": now,
                    "steps_total": "0",
                    "steps_finished": "0",
                    "deadline_at": repr(deadline_at),
                },
            )
            .append_events([event])
        )
        await self._run(event.workflow_id, program)
        # Outside the script so the index may live on another cluster slot; a
        # lost entry only means the agent loop, not the sweeper, enforces it.
        await self._redis.zadd(DEADLINES_KEY, {event.workflow_id: deadline_at})
        return None

    # -- planner --------------------------------------------------------------

    async def start_planning(self, workflow_id: str) -> None:
        """pending -> planning; a redelivered request may re-plan an unfinished planning."""
        program = (
            Program()
            .expect_field(WF, "status", [WorkflowStatus.PENDING, WorkflowStatus.PLANNING])
            .hset(WF, {"status": WorkflowStatus.PLANNING, "updated_at": _now()})
        )
        await self._run(workflow_id, program)

    async def record_plan(
        self,
        plan: PlanCreated,
        dispatches: Sequence[StepDispatched],
        *,
        usage: TokenUsage | None = None,
    ) -> None:
        """planning -> running with the plan's steps pending, logged atomically."""
        program = Program().expect_field(WF, "status", [WorkflowStatus.PLANNING])
        program.hset(
            WF,
            {
                "status": WorkflowStatus.RUNNING,
                "updated_at": _now(),
                "steps_total": str(len(plan.steps)),
                "plan": json.dumps([s.model_dump() for s in plan.steps]),
            },
        )
        step_fields: dict[str, str] = {}
        for step in plan.steps:
            status = StepStatus.WAITING if step.depends_on else StepStatus.PENDING
            step_fields[step_status_field(step.step_id)] = status
            step_fields[step_data_field(step.step_id)] = json.dumps({"attempt": 0})
        program.hset(STEPS, step_fields)
        if usage is not None:
            program.hincrby(WF, "usage_prompt", usage.prompt_tokens)
            program.hincrby(WF, "usage_completion", usage.completion_tokens)
        program.append_events([plan, *dispatches])
        await self._run(plan.workflow_id, program)

    async def release_step(self, dispatched: StepDispatched) -> None:
        """waiting -> pending: its inputs are done; refused if another replica released it."""
        step_id = dispatched.step.step_id
        program = (
            Program()
            .expect_field(WF, "status", [WorkflowStatus.RUNNING])
            .expect_field(STEPS, step_status_field(step_id), [StepStatus.WAITING])
            .hset(STEPS, {step_status_field(step_id): StepStatus.PENDING})
            .hset(WF, {"updated_at": _now()})
            .append_events([dispatched])
        )
        await self._run(dispatched.workflow_id, program)

    async def skip_step(self, failed: StepFailed) -> tuple[int, int]:
        """waiting -> failed: a step it depends on failed, so it can never run."""
        program = (
            Program()
            .expect_field(WF, "status", [WorkflowStatus.RUNNING])
            .expect_field(STEPS, step_status_field(failed.step_id), [StepStatus.WAITING])
        )
        return await self._record_outcome(program, failed)

    # -- agent-runner -----------------------------------------------------------

    async def start_step(self, started: StepStarted) -> None:
        """pending|running -> running (running again after a crash mid-step)."""
        program = (
            Program()
            .expect_field(WF, "status", [WorkflowStatus.RUNNING])
            .expect_field(
                STEPS,
                step_status_field(started.step_id),
                [StepStatus.PENDING, StepStatus.RUNNING],
            )
            .hset(STEPS, {step_status_field(started.step_id): StepStatus.RUNNING})
            .hset(
                STEPS, {step_data_field(started.step_id): json.dumps({"attempt": started.attempt})}
            )
            .hset(WF, {"updated_at": _now()})
            .append_events([started])
        )
        await self._run(started.workflow_id, program)

    async def finish_step(self, outcome: StepCompleted | StepFailed) -> tuple[int, int]:
        """running -> completed|failed, once. Returns (steps finished, steps total)."""
        program = (
            Program()
            .expect_field(WF, "status", [WorkflowStatus.RUNNING])
            .expect_field(STEPS, step_status_field(outcome.step_id), [StepStatus.RUNNING])
        )
        return await self._record_outcome(program, outcome)

    async def _record_outcome(
        self, program: Program, outcome: StepCompleted | StepFailed
    ) -> tuple[int, int]:
        status = StepStatus.COMPLETED if isinstance(outcome, StepCompleted) else StepStatus.FAILED
        data: dict[str, Any] = {
            "attempt": outcome.attempt,
            "models": list(outcome.models),
            "iterations": outcome.iterations,
            "usage": outcome.usage.model_dump(),
        }
        if isinstance(outcome, StepCompleted):
            data["result"] = outcome.result
        else:
            data["error"] = outcome.error.model_dump()
        program.hset(
            STEPS,
            {
                step_status_field(outcome.step_id): status,
                step_data_field(outcome.step_id): json.dumps(data),
                step_event_field(outcome.step_id): outcome.model_dump_json(),
            },
        )
        program.hincrby(WF, "usage_prompt", outcome.usage.prompt_tokens)
        program.hincrby(WF, "usage_completion", outcome.usage.completion_tokens)
        finished_at = len(program.ops)
        program.hincrby(WF, "steps_finished", 1).hset(WF, {"updated_at": _now()})
        program.append_events([outcome])
        results = await self._run(outcome.workflow_id, program)
        finished = int(results[finished_at])
        total_raw = await self._redis.hget(
            WorkflowKeys(outcome.workflow_id).workflow, "steps_total"
        )
        return finished, int(total_raw or 0)

    # -- synthesizer ------------------------------------------------------------

    async def start_synthesis(self, started: SynthesisStarted) -> None:
        program = (
            Program()
            .expect_field(WF, "status", [WorkflowStatus.RUNNING])
            .hset(WF, {"status": WorkflowStatus.SYNTHESIZING, "updated_at": _now()})
            .append_events([started])
        )
        await self._run(started.workflow_id, program)

    async def complete_workflow(self, completed: WorkflowCompleted) -> None:
        program = (
            Program()
            .expect_field(WF, "status", [WorkflowStatus.SYNTHESIZING])
            .hset(
                WF,
                {
                    "status": WorkflowStatus.COMPLETED,
                    "updated_at": _now(),
                    "result": completed.result,
                    "partial": "1" if completed.partial else "0",
                    "final_event": completed.model_dump_json(),
                },
            )
            .hincrby(WF, "usage_prompt", completed.usage.prompt_tokens)
            .hincrby(WF, "usage_completion", completed.usage.completion_tokens)
            .append_events([completed])
            .expire_all(self._retention_s)
        )
        await self._run(completed.workflow_id, program)
        await self._redis.zrem(DEADLINES_KEY, completed.workflow_id)

    async def cancel_workflow(self, cancelled: WorkflowCancelled) -> None:
        """Any active status -> cancelled, once; later step results are refused."""
        program = (
            Program()
            .expect_field(WF, "status", sorted(ACTIVE_WORKFLOW_STATUSES))
            .hset(
                WF,
                {
                    "status": WorkflowStatus.CANCELLED,
                    "updated_at": _now(),
                    "final_event": cancelled.model_dump_json(),
                },
            )
            .append_events([cancelled])
            .expire_all(self._retention_s)
        )
        await self._run(cancelled.workflow_id, program)
        await self._redis.zrem(DEADLINES_KEY, cancelled.workflow_id)

    async def overdue(self, now: float, *, limit: int = 100) -> list[str]:
        """Workflows past their deadline that may still be running."""
        ids: list[Any] = await self._redis.zrangebyscore(
            DEADLINES_KEY, "-inf", now, start=0, num=limit
        )
        return [_text(i) for i in ids]

    async def forget_deadline(self, workflow_id: str) -> None:
        await self._redis.zrem(DEADLINES_KEY, workflow_id)

    async def status(self, workflow_id: str) -> tuple[WorkflowStatus | None, float | None]:
        """The workflow's status and deadline (epoch seconds), in one cheap read."""
        raw = await self._redis.hmget(WorkflowKeys(workflow_id).workflow, ["status", "deadline_at"])
        status, deadline = (_text(v) if v is not None else None for v in raw)
        return (
            WorkflowStatus(status) if status else None,
            float(deadline) if deadline else None,
        )

    async def fail_workflow(
        self, failed: WorkflowFailed, *, usage: TokenUsage | None = None
    ) -> None:
        """Any active status -> failed, once."""
        usage = usage or TokenUsage()
        program = (
            Program()
            .expect_field(WF, "status", sorted(ACTIVE_WORKFLOW_STATUSES))
            .hset(
                WF,
                {
                    "status": WorkflowStatus.FAILED,
                    "updated_at": _now(),
                    "error": failed.error.model_dump_json(),
                    "final_event": failed.model_dump_json(),
                },
            )
            .hincrby(WF, "usage_prompt", usage.prompt_tokens)
            .hincrby(WF, "usage_completion", usage.completion_tokens)
            .append_events([failed])
            .expire_all(self._retention_s)
        )
        await self._run(failed.workflow_id, program)
        await self._redis.zrem(DEADLINES_KEY, failed.workflow_id)

    # -- reads ----------------------------------------------------------------

    async def get_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        keys = WorkflowKeys(workflow_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(keys.workflow)
            pipe.hgetall(keys.steps)
            wf_raw, steps_raw = await pipe.execute()
        if not wf_raw:
            return None
        wf = _decode_map(wf_raw)
        steps = _decode_map(steps_raw)
        plan = [PlannedStep.model_validate(s) for s in json.loads(wf.get("plan", "[]"))]
        return WorkflowRecord(
            workflow_id=workflow_id,
            tenant_id=wf.get("tenant_id", "default"),
            status=WorkflowStatus(wf["status"]),
            task=wf.get("task", ""),
            created_at=wf.get("created_at", ""),
            updated_at=wf.get("updated_at", ""),
            options=json.loads(wf.get("options", "{}")),
            steps=tuple(_step_record(step, steps) for step in plan),
            steps_total=int(wf.get("steps_total", "0")),
            steps_finished=int(wf.get("steps_finished", "0")),
            result=wf.get("result"),
            partial=wf.get("partial") == "1",
            error=json.loads(wf["error"]) if "error" in wf else None,
            usage=TokenUsage(
                prompt_tokens=int(wf.get("usage_prompt", "0")),
                completion_tokens=int(wf.get("usage_completion", "0")),
            ),
            final_event=wf.get("final_event"),
            deadline_at=float(wf["deadline_at"]) if "deadline_at" in wf else None,
        )

    async def read_log(
        self, workflow_id: str, *, after: str = "0", block_ms: int | None = None, count: int = 100
    ) -> list[LogEntry]:
        """Events after stream id ``after``; blocks up to ``block_ms`` when there are none."""
        key = WorkflowKeys(workflow_id).log
        response: Any = await self._redis.xread({key: after}, count=count, block=block_ms)
        entries: list[LogEntry] = []
        for _stream, messages in response or []:
            for stream_id, fields in messages:
                decoded = _decode_map(fields)
                entries.append(
                    LogEntry(
                        stream_id=_text(stream_id),
                        type=decoded.get("type", ""),
                        event_json=decoded.get("event", "{}"),
                    )
                )
        return entries


def _now() -> str:
    return utc_now().isoformat()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _decode_map(raw: dict[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}


def _step_record(step: PlannedStep, fields: dict[str, str]) -> StepRecord:
    data = json.loads(fields.get(step_data_field(step.step_id), "{}"))
    return StepRecord(
        step_id=step.step_id,
        index=step.index,
        title=step.title,
        instruction=step.instruction,
        status=StepStatus(fields.get(step_status_field(step.step_id), StepStatus.PENDING)),
        result=data.get("result"),
        error=data.get("error"),
        iterations=int(data.get("iterations", 0)),
        attempt=int(data.get("attempt", 0)),
        usage=TokenUsage.model_validate(data.get("usage", {})),
        models=tuple(data.get("models", ())),
        complexity=step.complexity,
        depends_on=step.depends_on,
        terminal_event=fields.get(step_event_field(step.step_id)),
    )
