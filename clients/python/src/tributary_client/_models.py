"""The API's answers as typed models.

They mirror the gateway's OpenAPI document (``/openapi.json``) and accept
fields they do not know, so a newer gateway does not break an older client.
Statuses are enums while the gateway sends a value this client knows, and the
plain string otherwise.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Budget",
    "CallList",
    "CallPayloadRef",
    "ErrorInfo",
    "InputRequest",
    "Key",
    "KeyCreated",
    "KeyList",
    "LLMCall",
    "LLMCallBody",
    "LLMRequest",
    "LLMResponse",
    "LLMToolCall",
    "LLMTry",
    "RecordedCall",
    "Step",
    "StepStatus",
    "StreamMode",
    "StreamToken",
    "TokenDelta",
    "TokenUsage",
    "ToolCall",
    "ToolCallBody",
    "Usage",
    "Workflow",
    "WorkflowAccepted",
    "WorkflowCancelled",
    "WorkflowLinks",
    "WorkflowOptions",
    "WorkflowPage",
    "WorkflowStatus",
    "WorkflowSummary",
]


class WorkflowStatus(StrEnum):
    PENDING = "pending"
    PLANNING = "planning"
    RUNNING = "running"
    AWAITING_INPUT = "awaiting_input"
    SYNTHESIZING = "synthesizing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATUSES = frozenset(
    {WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED}
)


class StreamMode(StrEnum):
    """What a workflow's event stream sends (see ``stream(mode=...)``)."""

    LIFECYCLE = "lifecycle"
    """The workflow's events: plan, steps, waits, budget, its end."""
    TOOLS = "tools"
    """And each tool call with its arguments and result (``tool.called``)."""
    TOKENS = "tokens"
    """And the live text of the agents' and synthesizer's LLM calls (``llm.delta``)."""


class StepStatus(StrEnum):
    WAITING = "waiting"
    PENDING = "pending"
    RUNNING = "running"
    AWAITING_INPUT = "awaiting_input"
    COMPLETED = "completed"
    FAILED = "failed"


# Left to right: the enum when it knows the value, else the string as sent.
AnyWorkflowStatus = Annotated[WorkflowStatus | str, Field(union_mode="left_to_right")]
AnyStepStatus = Annotated[StepStatus | str, Field(union_mode="left_to_right")]


class ApiModel(BaseModel):
    """Frozen, and keeps the fields it does not know (``model_extra``)."""

    model_config = ConfigDict(extra="allow", frozen=True)


class WorkflowLinks(ApiModel):
    self: str
    events: str
    calls: str


class WorkflowAccepted(ApiModel):
    """The answer to ``start``: the workflow's id; it runs on without the caller."""

    workflow_id: str
    status: AnyWorkflowStatus
    links: WorkflowLinks
    replayed: bool = Field(
        default=False,
        description="True when an earlier request with the same idempotency key started it.",
    )


class ErrorInfo(ApiModel):
    code: str = Field(description="Stable machine-readable error code, e.g. 'llm_unavailable'.")
    message: str
    error_class: str = Field(description="transient, permanent, ... (see the API's docs).")
    retryable: bool = False


class TokenUsage(ApiModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Usage(TokenUsage):
    total_tokens: int = 0


class Step(ApiModel):
    step_id: str
    index: int
    title: str
    instruction: str
    status: AnyStepStatus
    result: str | None = None
    error: ErrorInfo | None = None
    iterations: int = 0
    attempt: int = 1
    usage: Usage = Field(default_factory=Usage)
    models: list[str] = Field(default_factory=list)
    depends_on: list[str] = Field(default_factory=list)


class Budget(ApiModel):
    limit_tokens: int | None = None
    used_tokens: int = 0
    limit_cost_usd: float | None = None
    used_cost_usd: float = 0.0
    exhausted: bool = False
    on_exhausted: str = "partial"


class CallbackAttempt(ApiModel):
    """One try of a workflow's callback."""

    at: datetime
    status: int | None = None
    error: str | None = None
    duration_ms: int = 0


class Callback(ApiModel):
    """How far a workflow's callback got: pending, delivered or failed, and every try."""

    url: str
    state: str
    attempts: list[CallbackAttempt] = Field(default_factory=list)


class InputRequest(ApiModel):
    """An open question of the workflow to a person; answer it with ``input``."""

    request_id: str
    kind: str
    step_id: str | None = None
    question: str
    choices: list[str] | None = None
    requested_at: datetime
    expires_at: datetime | None = None


class Workflow(ApiModel):
    """A workflow's state: status, plan and steps, result, usage and budget."""

    workflow_id: str
    tenant_id: str
    status: AnyWorkflowStatus
    task: str
    options: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    steps: list[Step] = Field(default_factory=list)
    result: str | None = None
    partial: bool = False
    error: ErrorInfo | None = None
    usage: Usage = Field(default_factory=Usage)
    budget: Budget | None = None
    links: WorkflowLinks
    callback: Callback | None = None
    input_requests: list[InputRequest] = Field(default_factory=list)

    @property
    def terminal(self) -> bool:
        """True once it has completed, failed or been cancelled."""
        return self.status in TERMINAL_STATUSES


class WorkflowSummary(ApiModel):
    """A workflow as listed: no steps, result or usage (``get`` has them)."""

    workflow_id: str
    tenant_id: str
    status: AnyWorkflowStatus
    task: str
    created_at: datetime
    updated_at: datetime
    links: WorkflowLinks


class WorkflowPage(ApiModel):
    workflows: list[WorkflowSummary] = Field(description="Newest first.")
    next_cursor: str | None = Field(
        default=None, description="Pass it as ``cursor`` for the next page; None after the last."
    )


class WorkflowCancelled(ApiModel):
    workflow_id: str
    status: AnyWorkflowStatus
    reason: str


class StreamToken(ApiModel):
    """A short-lived token that opens one workflow's event stream, without the API key.

    For a client that cannot send an ``Authorization`` header, such as a browser's
    ``EventSource``: hand it ``stream_url`` (the gateway's base URL in front). The
    token is a credential until ``expires_at``: it is left out of ``repr``.
    """

    token: str = Field(repr=False)
    expires_at: datetime
    stream_url: str = Field(repr=False)


class WorkflowOptions(ApiModel):
    """What ``start`` sends as ``options``; unset fields take the gateway's defaults."""

    max_steps: int | None = None
    token_budget: int | None = None
    cost_budget_usd: float | None = None
    deadline_s: int | None = None
    on_budget_exhausted: str | None = None
    require_plan_approval: bool | None = None
    input_timeout_s: int | None = None
    on_input_timeout: str | None = None
    metadata: dict[str, str | int | float | bool] = Field(default_factory=dict)
    callback_url: str | None = None
    """Called with a signed POST when the workflow ends (docs/api.md, Callbacks)."""


class CallPayloadRef(ApiModel):
    """A body too large for one event travels in parts; the API joins them back."""

    digest: str
    size: int
    parts: int


class LLMTry(ApiModel):
    model: str
    deployment: str
    started_at: datetime
    duration_ms: int
    error: ErrorInfo | None = None


class LLMRequest(ApiModel):
    messages: list[dict[str, Any]] = Field(default_factory=list)
    messages_kept: int = 0
    tools: list[dict[str, Any]] = Field(default_factory=list)
    response_format: dict[str, Any] | None = None
    models: list[str] = Field(default_factory=list)
    max_tokens: int | None = None


class LLMToolCall(ApiModel):
    """A tool call as the model asked for it, inside an LLM call's answer."""

    id: str
    name: str
    arguments: str


class LLMResponse(ApiModel):
    content: str | None = None
    tool_calls: list[LLMToolCall] = Field(default_factory=list)
    finish_reason: str = ""
    model: str
    deployment: str | None = None
    usage: TokenUsage = Field(default_factory=TokenUsage)


class LLMCallBody(ApiModel):
    request: LLMRequest
    response: LLMResponse | None = None


class ToolCallBody(ApiModel):
    arguments: str
    result: str


class _CallRecord(ApiModel):
    event_id: str
    workflow_id: str
    tenant_id: str = "default"
    schema_version: int = 1
    occurred_at: datetime
    causation_id: str | None = None
    role: str
    step_id: str | None = None
    attempt: int = 1
    iteration: int | None = None
    sequence: int
    started_at: datetime
    duration_ms: int
    error: ErrorInfo | None = None
    payload: CallPayloadRef | None = None


class LLMCall(_CallRecord):
    """One LLM call: what was sent, the answer, and each HTTP try."""

    type: Literal["llm.called"] = "llm.called"
    body: LLMCallBody | None = None
    tries: list[LLMTry] = Field(default_factory=list)


class ToolCall(_CallRecord):
    """One tool call: its arguments, result and outcome."""

    type: Literal["tool.called"] = "tool.called"
    call_id: str
    name: str
    outcome: str
    failed: bool = False
    body: ToolCallBody | None = None


RecordedCall = Annotated[LLMCall | ToolCall, Field(discriminator="type")]


class CallList(ApiModel):
    calls: list[RecordedCall]
    next_after: str | None = None


class TokenDelta(ApiModel):
    """A piece of an LLM call's text as it streams (an ``llm.delta`` event).

    Live only: not in the workflow's log, so a resumed stream does not send
    again the deltas of the time it was away. The deltas of one call (same
    ``step_id``, ``attempt``, ``call``) joined in ``seq`` order are its
    message; a higher ``try_number`` than before starts the message over.
    """

    type: Literal["llm.delta"] = "llm.delta"
    workflow_id: str
    step_id: str | None = None
    """The step; None for the synthesis."""
    role: str
    """``agent`` or ``synthesizer``."""
    attempt: int = 1
    iteration: int | None = None
    call: int
    """The scope's LLM call (the ``sequence`` of its ``llm.called`` record)."""
    try_number: int = 1
    seq: int
    text: str


class Key(ApiModel):
    """An API key as listed: never the key itself."""

    key_id: str
    tenant_id: str
    scopes: list[str]
    label: str = ""
    created_at: datetime


class KeyCreated(Key):
    key: str = Field(description="The key itself, shown only in this answer.")


class KeyList(ApiModel):
    keys: list[Key]
