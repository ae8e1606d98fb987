"""The event contract: one envelope, frozen event models, one home topic each.

Every event carries the same envelope fields (``EventEnvelope``) and a ``type``
literal that discriminates the union ``AnyEvent``. Events are named in the past
tense and are immutable once emitted. Schemas evolve by adding optional fields;
a breaking change bumps ``schema_version``. Consumers ignore fields they do not
know, so producers can be upgraded first.

Event ids of events derived from another event are deterministic (see
``derived_event_id``): re-emitting after a crash yields the same id, which is
how consumers and the workflow log recognise a duplicate.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tributary_shared.core import topics
from tributary_shared.core.callback_urls import CALLBACK_URL_MAX_CHARS, check_callback_url

SCHEMA_VERSION = 1
_DERIVED_NAMESPACE = uuid.UUID("6f1f6a0e-5d2b-4c55-9a7e-2f4f3f1d9b10")


def new_event_id() -> str:
    return uuid.uuid4().hex


def derived_event_id(*parts: str) -> str:
    """A stable id for an event that is a deterministic consequence of ``parts``."""
    return uuid.uuid5(_DERIVED_NAMESPACE, "/".join(parts)).hex


def utc_now() -> datetime:
    return datetime.now(UTC)


class Model(BaseModel):
    """Base of every value object on the wire: immutable, tolerant of new fields."""

    model_config = ConfigDict(frozen=True, extra="ignore")


Complexity = Literal["low", "medium", "high"]
ErrorClassName = Literal["transient", "model", "tool", "logic", "fatal", "internal"]
BudgetPolicy = Literal["partial", "fail"]


class TokenUsage(Model):
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )


class ErrorInfo(Model):
    """What a user sees of a failure: a stable code and a clean message."""

    code: str = Field(description="Stable machine-readable error code, e.g. 'llm_unavailable'.")
    message: str = Field(description="Human-readable explanation without internal details.")
    error_class: ErrorClassName = Field(
        description="transient, model, tool, logic, fatal or internal."
    )
    retryable: bool = False


# Bounds of a request's options. They keep one request from storing or asking for
# without limit (the workflow's record stays in Redis for days); per-tenant ceilings,
# set by the operator, sit below them.
METADATA_MAX_KEYS = 32
METADATA_MAX_KEY_CHARS = 64
METADATA_MAX_VALUE_CHARS = 1024
METADATA_MAX_BYTES = 8192
MAX_STEPS_BOUND = 50
TOKEN_BUDGET_BOUND = 100_000_000
COST_BUDGET_USD_BOUND = 100_000.0
DEADLINE_S_BOUND = 7 * 24 * 3600
INPUT_ANSWER_MAX_CHARS = 4000
"""Longest answer to an input request (and default answer on its timeout)."""
INPUT_QUESTION_MAX_CHARS = 2000
INPUT_CHOICES_MAX = 20
INPUT_CHOICE_MAX_CHARS = 200
APPROVAL_CHOICES = ("approve", "reject")
"""The answers to a plan_approval or step_approval request."""
ON_INPUT_TIMEOUT_FAIL = "fail"
"""``on_input_timeout`` value that fails the step; any other value is the default answer."""

MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=METADATA_MAX_KEY_CHARS)]
MetadataValue = Annotated[str, StringConstraints(max_length=METADATA_MAX_VALUE_CHARS)]


class WorkflowOptions(Model):
    max_steps: int | None = Field(
        default=None,
        ge=1,
        le=MAX_STEPS_BOUND,
        description="Upper bound on the number of planned steps.",
    )
    metadata: dict[MetadataKey, MetadataValue] = Field(
        default_factory=dict,
        max_length=METADATA_MAX_KEYS,
        description="Opaque labels echoed back in the workflow state: at most "
        f"{METADATA_MAX_KEYS} keys of 1 to {METADATA_MAX_KEY_CHARS} characters, values of at "
        f"most {METADATA_MAX_VALUE_CHARS} characters, {METADATA_MAX_BYTES} bytes in all as "
        "JSON.",
    )
    token_budget: int | None = Field(
        default=None,
        ge=1,
        le=TOKEN_BUDGET_BOUND,
        description="Most tokens (prompt + completion) all LLM calls of the workflow may use; "
        "defaults to TRIBUTARY_DEFAULT_TOKEN_BUDGET.",
    )
    cost_budget_usd: float | None = Field(
        default=None,
        gt=0,
        le=COST_BUDGET_USD_BOUND,
        allow_inf_nan=False,
        description="Most the workflow's LLM calls may cost, priced by TRIBUTARY_MODEL_PRICES.",
    )
    deadline_s: int | None = Field(
        default=None,
        ge=1,
        le=DEADLINE_S_BOUND,
        description="Seconds the workflow may take from acceptance; past it, it fails with "
        "deadline_exceeded. Defaults to TRIBUTARY_DEFAULT_DEADLINE_S.",
    )
    on_budget_exhausted: BudgetPolicy | None = Field(
        default=None,
        description="'partial': answer from the steps that finished, marked partial; "
        "'fail': the workflow fails. Defaults to TRIBUTARY_ON_BUDGET_EXHAUSTED.",
    )
    input_timeout_s: int | None = Field(
        default=None,
        ge=1,
        le=DEADLINE_S_BOUND,
        description="Seconds an input request (an agent's ask_human question) stays open; "
        "then on_input_timeout applies. Defaults to TRIBUTARY_INPUT_TIMEOUT_S (none: it "
        "waits until the workflow's deadline).",
    )
    require_plan_approval: bool = Field(
        default=False,
        description="The plan waits for a person's approval (a plan_approval request, "
        "answered 'approve' or 'reject') before any step runs; 'reject' fails the workflow.",
    )
    on_input_timeout: str | None = Field(
        default=None,
        min_length=1,
        max_length=INPUT_ANSWER_MAX_CHARS,
        description=f"What an expired input request gets: '{ON_INPUT_TIMEOUT_FAIL}' fails its "
        "step with input_timeout; any other text is the answer given in its place. Defaults "
        "to TRIBUTARY_ON_INPUT_TIMEOUT.",
    )

    callback_url: str | None = Field(
        default=None,
        max_length=CALLBACK_URL_MAX_CHARS,
        description="Called once (a signed JSON POST, retried on failure) when the workflow "
        "ends: completed, failed or cancelled. https:// only (http:// only where "
        "TRIBUTARY_CALLBACK_ALLOW_HTTP is on), no user name or password, at most "
        f"{CALLBACK_URL_MAX_CHARS} characters; public addresses only. Defaults to the "
        "tenant's callback URL (TRIBUTARY_CALLBACK_TENANTS), if any.",
    )

    @field_validator("callback_url")
    @classmethod
    def _callback_url_form(cls, url: str | None) -> str | None:
        # The scheme is held to https by whoever accepts the request (the gateway
        # knows whether http is allowed here); the rest of the form is checked here.
        return None if url is None else check_callback_url(url, allow_http=True)

    @field_validator("metadata")
    @classmethod
    def _metadata_fits(cls, metadata: dict[str, str]) -> dict[str, str]:
        size = len(json.dumps(metadata, ensure_ascii=False).encode())
        if size > METADATA_MAX_BYTES:
            raise ValueError(f"metadata is {size} bytes as JSON, more than {METADATA_MAX_BYTES}")
        return metadata


class PlannedStep(Model):
    step_id: str
    index: int
    title: str
    instruction: str
    complexity: Complexity = Field(
        default="medium", description="The planner's estimate; routes the step to a model."
    )
    depends_on: tuple[str, ...] = Field(
        default=(), description="Steps whose results this step needs; it starts after them."
    )
    needs_approval: bool = Field(
        default=False,
        description="A person approves the step before it runs (a step_approval request).",
    )


class StepInput(Model):
    """The result of a step another step depends on."""

    step_id: str
    title: str
    result: str


_WIRE_REQUIRED = ("event_id", "type", "workflow_id", "occurred_at")


class EventEnvelope(Model):
    """Fields every event carries. On the wire, all but the optional ones are required."""

    event_id: str = Field(
        default_factory=new_event_id,
        description="Unique id; the same id means the same event (duplicates are recognised).",
    )
    type: str = Field(description="The event type, e.g. 'step.completed'.")
    schema_version: int = Field(
        default=SCHEMA_VERSION,
        ge=1,
        le=SCHEMA_VERSION,
        description="Bumped only for a breaking change of the type; a consumer refuses "
        "(dead-letters) a version newer than it knows rather than misread it.",
    )
    workflow_id: str = Field(description="The workflow; also the Kafka message key.")
    tenant_id: str = Field(default="default", description="The tenant owning the workflow.")
    occurred_at: AwareDatetime = Field(
        default_factory=utc_now, description="When the event happened (timezone-aware, UTC)."
    )
    causation_id: str | None = Field(
        default=None, description="event_id of the event that caused this one."
    )

    @model_validator(mode="before")
    @classmethod
    def _complete_on_the_wire(cls, data: Any, info: ValidationInfo) -> Any:
        # Defaults are for building events in code. A decoded event lacking an
        # id or a time would get fresh ones, and its redeliveries would no
        # longer be recognised as duplicates: refuse it instead.
        if info.context and info.context.get("wire") and isinstance(data, dict):
            missing = [name for name in _WIRE_REQUIRED if name not in data]
            if missing:
                raise ValueError(f"missing envelope fields: {', '.join(missing)}")
        return data


class WorkflowRequested(EventEnvelope):
    """A client (HTTP or an integration on the ingress topic) asked for a workflow."""

    type: Literal["workflow.requested"] = "workflow.requested"
    task: str
    options: WorkflowOptions = Field(default_factory=WorkflowOptions)


class PlanCreated(EventEnvelope):
    """The planner split the task into steps; each is dispatched next."""

    type: Literal["plan.created"] = "plan.created"
    steps: tuple[PlannedStep, ...]


class StepDispatched(EventEnvelope):
    """A step is ready to run; agent-runners consume these."""

    type: Literal["step.dispatched"] = "step.dispatched"
    step: PlannedStep
    task: str = Field(description="The workflow's task, for context.")
    inputs: tuple[StepInput, ...] = Field(
        default=(), description="Results of the steps this one depends on."
    )


class StepStarted(EventEnvelope):
    """An agent-runner began (or, after a crash, resumed) a step."""

    type: Literal["step.started"] = "step.started"
    step_id: str
    attempt: int


class StepCompleted(EventEnvelope):
    """A step's agent answered; ``result`` is its answer."""

    type: Literal["step.completed"] = "step.completed"
    step_id: str
    result: str
    iterations: int
    attempt: int = 1
    usage: TokenUsage = Field(default_factory=TokenUsage)
    models: tuple[str, ...] = Field(default=(), description="Models that served the step's calls.")
    deployments: tuple[str, ...] = Field(
        default=(),
        description="Deployments (ids from TRIBUTARY_LLM_DEPLOYMENTS; a model served by "
        "TRIBUTARY_LLM_BASE_URL goes by its own name) that "
        "served the step's calls, in the order they first did.",
    )


class StepFailed(EventEnvelope):
    """A step stopped without an answer; ``error`` says why."""

    type: Literal["step.failed"] = "step.failed"
    step_id: str
    error: ErrorInfo
    iterations: int = 0
    attempt: int = 1
    usage: TokenUsage = Field(default_factory=TokenUsage)
    models: tuple[str, ...] = Field(default=(), description="Models that served the step's calls.")
    deployments: tuple[str, ...] = Field(
        default=(),
        description="Deployments (ids from TRIBUTARY_LLM_DEPLOYMENTS; a model served by "
        "TRIBUTARY_LLM_BASE_URL goes by its own name) that "
        "served the step's calls, in the order they first did.",
    )


class SynthesisStarted(EventEnvelope):
    """Every step finished; the synthesizer is writing the final answer."""

    type: Literal["synthesis.started"] = "synthesis.started"


class WorkflowCompleted(EventEnvelope):
    """The workflow ended with an answer (terminal)."""

    type: Literal["workflow.completed"] = "workflow.completed"
    result: str
    partial: bool = Field(
        default=False, description="True when some steps failed and the answer covers the rest."
    )
    usage: TokenUsage = Field(default_factory=TokenUsage)


class BudgetExhausted(EventEnvelope):
    """The workflow's budget cannot cover another LLM call; none will start."""

    type: Literal["budget.exhausted"] = "budget.exhausted"
    limit_tokens: int | None = None
    used_tokens: int = 0
    limit_cost_usd: float | None = None
    used_cost_usd: float = 0.0
    policy: BudgetPolicy = "partial"


class LLMWaiting(EventEnvelope):
    """An LLM call of the workflow is waiting for its model: the endpoint failed
    transiently (refused, timed out, 5xx, 429, overloaded) and the call tries again at
    ``next_try_at``, or the deployment's admission gate holds the call (its circuit
    breaker open, its rate limit reached). Sent when the call first pauses, or after it
    has waited TRIBUTARY_LLM_WAIT_NOTICE_INTERVAL_S for the gate, then at most that
    often while it waits; a notice, which changes none of the workflow's state."""

    type: Literal["llm.waiting"] = "llm.waiting"
    role: str = Field(description="Who made the call: planner, agent or synthesizer.")
    step_id: str | None = Field(default=None, description="The step, for an agent's call.")
    model: str = Field(description="The model the call asked for.")
    deployment: str = Field(
        description="The deployment whose try failed last, or whose gate holds the call."
    )
    error: ErrorInfo | None = Field(
        default=None,
        description="Why the last try failed; null when none has yet (the gate holds the call).",
    )
    attempt: int = Field(ge=0, description="Tries the call has made so far.")
    waiting_since: AwareDatetime = Field(
        description="When the call began to wait: its first failure, or its turn at the gate."
    )
    next_try_at: AwareDatetime | None = Field(
        default=None,
        description="When the call tries again; null: as soon as the deployment's gate lets it.",
    )


CallRole = Literal["planner", "agent", "synthesizer"]


class LLMTry(Model):
    """One HTTP attempt of an LLM call at one deployment."""

    model: str = Field(description="The model name the try asked for.")
    deployment: str = Field(description="The deployment the try was sent to.")
    started_at: AwareDatetime = Field(description="When the request left (after admission).")
    duration_ms: int = Field(ge=0, description="From sending the request to its answer or error.")
    error: ErrorInfo | None = Field(
        default=None, description="Why the try failed; null for the try that succeeded."
    )


class LLMRequestRecord(Model):
    """What an LLM call asked. ``messages`` holds the messages after the first
    ``messages_kept``, which are the first ones of the previous call of the same scope
    (sequence - 1): a conversation that grows by appending is stored once."""

    messages: tuple[dict[str, Any], ...] = Field(
        description="Chat messages in the OpenAI wire shape, after the kept ones."
    )
    messages_kept: int = Field(
        default=0,
        ge=0,
        description="How many leading messages are the previous call's (same scope).",
    )
    tools: tuple[dict[str, Any], ...] = Field(
        default=(), description="The tools offered, as OpenAI function schemas."
    )
    response_format: dict[str, Any] | None = Field(
        default=None, description="The structured-output format asked for, if any."
    )
    models: tuple[str, ...] = Field(
        default=(), description="The models the call may use, in the order they are tried."
    )
    max_tokens: int | None = Field(default=None, description="The completion token cap sent.")


class RecordedToolCall(Model):
    id: str
    name: str
    arguments: str = Field(description="The arguments as the model wrote them (JSON text).")


class LLMResponseRecord(Model):
    """What the model answered."""

    content: str | None = None
    tool_calls: tuple[RecordedToolCall, ...] = ()
    finish_reason: str = ""
    model: str = Field(description="The model the endpoint says served the call.")
    deployment: str | None = Field(default=None, description="The deployment that served it.")
    usage: TokenUsage = Field(default_factory=TokenUsage)


class LLMCallBody(Model):
    """The large part of an ``llm.called`` record: inline, or in ``call.payload`` parts."""

    request: LLMRequestRecord
    response: LLMResponseRecord | None = Field(
        default=None, description="Null when the call failed (see the record's error)."
    )


class ToolCallBody(Model):
    """The large part of a ``tool.called`` record: inline, or in ``call.payload`` parts."""

    arguments: str = Field(description="The arguments as the model wrote them (JSON text).")
    result: str = Field(
        description="What went back to the model as the tool's result (before it was "
        "marked as untrusted data): the output, or a JSON error object."
    )


class PayloadRef(Model):
    """A record's body too large for one message: it travels, once, as ``call.payload``
    parts of the same workflow, before the record, and is found by its digest."""

    digest: str = Field(description="sha256 (hex) of the body's JSON text.")
    size: int = Field(ge=0, description="Bytes of the body's JSON text (UTF-8).")
    parts: int = Field(ge=1, description="How many call.payload parts carry it.")


class CallRecordBase(EventEnvelope):
    """Where a recorded call belongs. A scope is one (role, step, attempt): the
    planning of a workflow, one attempt of one step, or the synthesis; ``sequence``
    numbers its calls of one kind from 1 in the order they were made."""

    role: CallRole = Field(description="Who made the call: planner, agent or synthesizer.")
    step_id: str | None = Field(default=None, description="The step, for an agent's call.")
    attempt: int = Field(default=1, ge=1, description="The step's attempt (1 outside steps).")
    iteration: int | None = Field(
        default=None, description="The agent loop's iteration the call belongs to."
    )
    sequence: int = Field(ge=1, description="1, 2, ... within the scope, per kind of call.")
    started_at: AwareDatetime = Field(description="When the call began.")
    duration_ms: int = Field(ge=0, description="How long the call took, retries included.")
    error: ErrorInfo | None = Field(
        default=None, description="Why the call failed; null when it succeeded."
    )
    payload: PayloadRef | None = Field(
        default=None,
        description="Set when the body travels in call.payload parts instead of inline.",
    )


class LLMCalled(CallRecordBase):
    """An LLM call of the workflow was made: what was asked, what came back, every try.
    Secrets are redacted. A record of the workflow's calls, for inspection and replay;
    it changes none of the workflow's state."""

    type: Literal["llm.called"] = "llm.called"
    body: LLMCallBody | None = Field(
        default=None, description="Request and response; null when ``payload`` is set."
    )
    tries: tuple[LLMTry, ...] = Field(
        default=(), description="Every HTTP attempt, in order, retries and fallbacks included."
    )


ToolOutcome = Literal["ran", "effect_recorded", "not_run_loop"]


class ToolCalled(CallRecordBase):
    """A tool call of an agent was answered: its name, arguments and result. Secrets are
    redacted. A record for inspection and replay; it changes none of the workflow's state."""

    type: Literal["tool.called"] = "tool.called"
    call_id: str = Field(description="The id the model gave the tool call.")
    name: str = Field(description="The tool's name, as the model called it.")
    outcome: ToolOutcome = Field(
        default="ran",
        description="'ran': the tool ran; 'effect_recorded': a side effect an earlier "
        "attempt made and recorded was not made again, its recorded result was used; "
        "'not_run_loop': loop detection answered instead of the tool.",
    )
    failed: bool = Field(default=False, description="True when the result is a tool error.")
    body: ToolCallBody | None = Field(
        default=None, description="Arguments and result; null when ``payload`` is set."
    )


class CallPayload(EventEnvelope):
    """One part of a call record's body too large for one message (see ``PayloadRef``)."""

    type: Literal["call.payload"] = "call.payload"
    digest: str = Field(description="sha256 (hex) of the whole body's JSON text.")
    part: int = Field(ge=0, description="0-based index of this part.")
    parts: int = Field(ge=1, description="How many parts the body has.")
    data: str = Field(description="This part's slice of the body's JSON text.")


InputKind = Literal["question", "plan_approval", "step_approval"]
InputSource = Literal["http", "kafka", "timeout"]
InputAnswer = Annotated[str, StringConstraints(min_length=1, max_length=INPUT_ANSWER_MAX_CHARS)]


class InputRequested(EventEnvelope):
    """The workflow waits for a human: an agent asked a question (``ask_human``). Its
    step holds no runner while it waits; answer with ``POST /v1/workflows/{id}/input``
    or ``input.submitted`` on the ingress topic."""

    type: Literal["input.requested"] = "input.requested"
    request_id: str = Field(description="What the answer names.")
    kind: InputKind = Field(
        default="question", description="question, plan_approval or step_approval."
    )
    step_id: str | None = Field(default=None, description="The paused step; null for the plan.")
    question: str
    choices: tuple[str, ...] | None = Field(
        default=None, description="The answers allowed; null: any text."
    )
    requested_at: AwareDatetime
    expires_at: AwareDatetime | None = Field(
        default=None,
        description="When on_input_timeout applies; null: never (the "
        "workflow's deadline still does).",
    )


class InputAnswered(EventEnvelope):
    """An input request was answered (or its timeout gave the default answer); its step
    runs on from where it paused."""

    type: Literal["input.answered"] = "input.answered"
    request_id: str
    step_id: str | None = None
    answer: str
    source: InputSource = Field(description="http, kafka (the ingress topic) or timeout.")


class InputSubmitted(EventEnvelope):
    """An integration answers an input request on the ingress topic."""

    type: Literal["input.submitted"] = "input.submitted"
    request_id: str
    answer: InputAnswer


class WorkflowCancelRequested(EventEnvelope):
    """An integration asks (on the ingress topic) for a workflow to be cancelled."""

    type: Literal["workflow.cancel_requested"] = "workflow.cancel_requested"
    reason: str = Field(default="cancelled by request", max_length=500)


class WorkflowCancelled(EventEnvelope):
    """The workflow was cancelled; running steps stop, no result follows (terminal)."""

    type: Literal["workflow.cancelled"] = "workflow.cancelled"
    reason: str = "cancelled by request"


class WorkflowFailed(EventEnvelope):
    """The workflow ended without an answer; ``error`` says why (terminal)."""

    type: Literal["workflow.failed"] = "workflow.failed"
    error: ErrorInfo


AnyEvent = Annotated[
    WorkflowRequested
    | PlanCreated
    | StepDispatched
    | StepStarted
    | StepCompleted
    | StepFailed
    | SynthesisStarted
    | WorkflowCompleted
    | BudgetExhausted
    | LLMWaiting
    | LLMCalled
    | ToolCalled
    | CallPayload
    | InputRequested
    | InputAnswered
    | InputSubmitted
    | WorkflowCancelRequested
    | WorkflowCancelled
    | WorkflowFailed,
    Field(discriminator="type"),
]
ANY_EVENT: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)

CALL_RECORD_TYPES = frozenset({"llm.called", "tool.called", "call.payload"})
"""The record of a workflow's LLM and tool calls: on their own topic, never in the
default event stream."""

TERMINAL_EVENT_TYPES = frozenset({"workflow.completed", "workflow.failed", "workflow.cancelled"})

_HOME_TOPIC: dict[str, topics.TopicSpec] = {
    "workflow.requested": topics.WORKFLOW_REQUESTS,
    "workflow.cancel_requested": topics.WORKFLOW_REQUESTS,
    "input.submitted": topics.WORKFLOW_REQUESTS,
    "step.dispatched": topics.STEPS,
    "step.completed": topics.STEP_RESULTS,
    "step.failed": topics.STEP_RESULTS,
    "llm.called": topics.WORKFLOW_CALLS,
    "tool.called": topics.WORKFLOW_CALLS,
    "call.payload": topics.WORKFLOW_CALLS,
}


def home_topic(event: EventEnvelope) -> str:
    """The one topic an event is published on; everything else is egress."""
    return _HOME_TOPIC.get(event.type, topics.WORKFLOW_EVENTS).name


def encode_event(event: EventEnvelope) -> bytes:
    return event.model_dump_json().encode()


def decode_event(raw: bytes | str) -> AnyEvent:
    """Parse any event; raises ``pydantic.ValidationError`` for malformed or unknown ones."""
    return ANY_EVENT.validate_json(raw, context={"wire": True})


def event_catalog() -> dict[str, type[EventEnvelope]]:
    """Every event type by its ``type`` literal, for documentation and AsyncAPI."""
    catalog: dict[str, type[EventEnvelope]] = {}
    classes = list(EventEnvelope.__subclasses__())
    while classes:
        cls = classes.pop(0)
        classes.extend(cls.__subclasses__())
        type_field: Any = cls.model_fields["type"].default
        if isinstance(type_field, str):  # an abstract base (CallRecordBase) has none
            catalog[type_field] = cls
    return catalog
