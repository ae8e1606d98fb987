"""The HTTP API's request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tributary_gateway.callbacks import CallbackView
from tributary_shared.core.access import DEFAULT_SCOPES, TENANT_PATTERN, ApiKeyRecord, Scope
from tributary_shared.core.budget import BudgetState
from tributary_shared.core.events import (
    ErrorInfo,
    InputAnswer,
    InputKind,
    LLMCalled,
    TokenUsage,
    ToolCalled,
    WorkflowOptions,
)
from tributary_shared.core.records import InputRequest, InputState, StepRecord, WorkflowRecord
from tributary_shared.core.status import StepStatus, WorkflowStatus


class CreateWorkflow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, description="What the workflow should accomplish.")
    options: WorkflowOptions = Field(default_factory=WorkflowOptions)
    tenant_id: str | None = Field(
        default=None,
        pattern=TENANT_PATTERN,
        description="The tenant the workflow belongs to; unset means the API key's tenant. "
        "Only an admin key may name another tenant.",
    )


class CancelWorkflow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=500)


class AnswerInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=100, description="The input request answered.")
    answer: InputAnswer = Field(
        description="The answer; one of the request's `choices` when it has them."
    )


class InputRequestView(BaseModel):
    """An open input request: a question the workflow waits on."""

    request_id: str
    kind: InputKind
    step_id: str | None = Field(description="The paused step; null for plan approval.")
    question: str
    choices: list[str] | None = Field(description="The allowed answers; null: any text.")
    requested_at: str
    expires_at: str | None = Field(description="When on_input_timeout applies; null: never.")

    @classmethod
    def of(cls, request: InputRequest) -> InputRequestView:
        return cls(
            request_id=request.request_id,
            kind=request.kind,
            step_id=request.step_id,
            question=request.question,
            choices=list(request.choices) if request.choices is not None else None,
            requested_at=request.requested_at.isoformat(),
            expires_at=request.expires_at.isoformat() if request.expires_at else None,
        )


class InputAnsweredView(InputRequestView):
    """The request as answered; its step resumes."""

    state: InputState
    answer: str | None
    answered_at: str | None

    @classmethod
    def answered(cls, request: InputRequest) -> InputAnsweredView:
        return cls(
            **InputRequestView.of(request).model_dump(),
            state=request.state,
            answer=request.answer,
            answered_at=request.answered_at.isoformat() if request.answered_at else None,
        )


class InputProblem(BaseModel):
    """A refused answer: what is wrong, and a stable code for it."""

    detail: str
    code: str = Field(
        description="workflow_not_found, input_request_not_found, input_already_answered, "
        "input_request_expired, workflow_ended or input_answer_not_a_choice."
    )


class WorkflowCancelledView(BaseModel):
    workflow_id: str
    status: WorkflowStatus
    reason: str


class WorkflowLinks(BaseModel):
    self: str
    events: str
    calls: str


RecordedCall = Annotated[LLMCalled | ToolCalled, Field(discriminator="type")]


class CallList(BaseModel):
    calls: list[RecordedCall] = Field(
        description="The workflow's recorded LLM and tool calls in the order they were "
        "recorded, each with its body (request and response, or arguments and result)."
    )
    next_after: str | None = Field(
        description="Pass it as `after` for the next page; null when the log held no more "
        "(a running workflow may record more later)."
    )


class WorkflowAccepted(BaseModel):
    workflow_id: str
    status: WorkflowStatus
    links: WorkflowLinks


class StreamTokenIssued(BaseModel):
    token: str = Field(
        description="Pass it as `?token=` to this workflow's event stream, instead of the "
        "`Authorization` header (a browser's `EventSource` cannot send one). It opens only "
        "that stream, and only until `expires_at`; keep it out of logs like a key."
    )
    expires_at: datetime = Field(
        description="Until when the token can open the stream; a stream open then goes on."
    )
    stream_url: str = Field(
        description="The event stream's path with the token: `new EventSource(base + stream_url)`."
    )


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
    tenant_id: str
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
    callback: CallbackView | None = Field(
        default=None,
        description="The workflow's callback, when it has a `callback_url`: the URL, "
        "pending / delivered / failed, and every try (time, HTTP status or error, duration).",
    )
    input_requests: list[InputRequestView] = Field(
        default_factory=list,
        description="The open input requests; the workflow is awaiting_input while any is.",
    )

    @classmethod
    def of(
        cls,
        record: WorkflowRecord,
        budget: BudgetState,
        links: WorkflowLinks,
        *,
        callback: CallbackView | None = None,
    ) -> WorkflowView:
        return cls(
            workflow_id=record.workflow_id,
            tenant_id=record.tenant_id,
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
            callback=callback,
            input_requests=[InputRequestView.of(r) for r in record.open_inputs],
        )


class WorkflowSummary(BaseModel):
    workflow_id: str
    tenant_id: str
    status: WorkflowStatus
    task: str
    created_at: str
    updated_at: str
    links: WorkflowLinks

    @classmethod
    def of(cls, record: WorkflowRecord, links: WorkflowLinks) -> WorkflowSummary:
        return cls(
            workflow_id=record.workflow_id,
            tenant_id=record.tenant_id,
            status=record.status,
            task=record.task,
            created_at=record.created_at.isoformat(),
            updated_at=record.updated_at.isoformat(),
            links=links,
        )


class WorkflowList(BaseModel):
    workflows: list[WorkflowSummary] = Field(description="Newest first.")
    next_cursor: str | None = Field(
        description="Pass it as `cursor` for the next page; null after the last page. A page "
        "may hold fewer workflows than `limit` while more follow."
    )


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str = Field(pattern=TENANT_PATTERN, description="The tenant the key acts for.")
    scopes: list[Scope] = Field(
        default_factory=lambda: sorted(DEFAULT_SCOPES),
        min_length=1,
        description="What the key may do. `admin` implies every other scope and every tenant.",
    )
    label: str = Field(
        default="", max_length=200, description="A note of what the key is for (who holds it)."
    )


class KeyView(BaseModel):
    key_id: str = Field(description="Names the key in listings and to revoke it; not a secret.")
    tenant_id: str
    scopes: list[Scope]
    label: str
    created_at: datetime

    @classmethod
    def of(cls, record: ApiKeyRecord) -> KeyView:
        return cls(
            key_id=record.key_id,
            tenant_id=record.tenant_id,
            scopes=sorted(record.scopes),
            label=record.label,
            created_at=record.created_at,
        )


class KeyCreated(KeyView):
    key: str = Field(
        description="The key itself, to send as `Authorization: Bearer <key>`. Shown only "
        "now: the gateway keeps its hash, not the key."
    )


class KeyList(BaseModel):
    keys: list[KeyView] = Field(description="Oldest first.")


class Problem(BaseModel):
    detail: str


class FieldError(BaseModel):
    """One part of a request that fails validation (FastAPI's own error shape)."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int] = Field(description="Where: the part of the request, then the field.")
    msg: str
    type: str


class Invalid(BaseModel):
    """A ``422``: the request's fields fail validation, or it asks for more than a bound."""

    detail: list[FieldError] | str = Field(
        description="The fields that fail validation, or a sentence naming the bound or rule "
        "the request breaks."
    )


class InvalidAnswer(Invalid):
    """A ``422`` of the answer route: a malformed body (the fields, as for any request), or
    an answer that is not one of the request's choices (a sentence, and its code)."""

    code: str | None = Field(
        default=None, description="input_answer_not_a_choice; absent for a malformed body."
    )


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    redis: Literal["ok", "unreachable"]
    kafka: Literal["ok", "unreachable"]
