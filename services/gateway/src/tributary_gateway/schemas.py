"""The HTTP API's request and response bodies."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tributary_shared.core.budget import BudgetState
from tributary_shared.core.events import ErrorInfo, TokenUsage, WorkflowOptions
from tributary_shared.core.records import StepRecord, WorkflowRecord
from tributary_shared.core.status import StepStatus, WorkflowStatus


class CreateWorkflow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, description="What the workflow should accomplish.")
    options: WorkflowOptions = Field(default_factory=WorkflowOptions)


class CancelWorkflow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=500)


class WorkflowCancelledView(BaseModel):
    workflow_id: str
    status: WorkflowStatus
    reason: str


class WorkflowLinks(BaseModel):
    self: str
    events: str


class WorkflowAccepted(BaseModel):
    workflow_id: str
    status: WorkflowStatus
    links: WorkflowLinks


class UsageView(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, usage: TokenUsage) -> UsageView:
        return cls(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
        )


class StepView(BaseModel):
    step_id: str
    index: int
    title: str
    instruction: str
    status: StepStatus
    result: str | None
    error: ErrorInfo | None
    iterations: int
    attempt: int
    usage: UsageView
    models: list[str]
    depends_on: list[str]

    @classmethod
    def of(cls, step: StepRecord) -> StepView:
        return cls(
            step_id=step.step_id,
            index=step.index,
            title=step.title,
            instruction=step.instruction,
            status=step.status,
            result=step.result,
            error=step.error,
            iterations=step.iterations,
            attempt=step.attempt,
            usage=UsageView.of(step.usage),
            models=list(step.models),
            depends_on=list(step.depends_on),
        )


class BudgetView(BaseModel):
    limit_tokens: int | None
    used_tokens: int
    limit_cost_usd: float | None
    used_cost_usd: float
    exhausted: bool
    on_exhausted: str

    @classmethod
    def of(cls, state: BudgetState) -> BudgetView:
        return cls(
            limit_tokens=state.limit_tokens,
            used_tokens=state.used_tokens,
            limit_cost_usd=state.limit_cost_usd,
            used_cost_usd=state.used_cost_usd,
            exhausted=state.exhausted,
            on_exhausted=state.policy,
        )


class WorkflowView(BaseModel):
    workflow_id: str
    status: WorkflowStatus
    task: str
    options: dict[str, Any]
    created_at: str
    updated_at: str
    steps: list[StepView]
    result: str | None
    partial: bool
    error: ErrorInfo | None
    usage: UsageView
    budget: BudgetView
    links: WorkflowLinks

    @classmethod
    def of(cls, record: WorkflowRecord, budget: BudgetState, links: WorkflowLinks) -> WorkflowView:
        return cls(
            workflow_id=record.workflow_id,
            status=record.status,
            task=record.task,
            options=record.options.model_dump(mode="json"),
            created_at=record.created_at.isoformat(),
            updated_at=record.updated_at.isoformat(),
            steps=[StepView.of(step) for step in record.steps],
            result=record.result,
            partial=record.partial,
            error=record.error,
            usage=UsageView.of(record.usage),
            budget=BudgetView.of(budget),
            links=links,
        )


class Problem(BaseModel):
    detail: str
