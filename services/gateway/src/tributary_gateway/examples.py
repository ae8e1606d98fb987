"""Example bodies of the OpenAPI document: requests, and the answers of each route.

One constant per shape, used by every route that sends or answers it, so Swagger
UI, ReDoc and client generators show the same workflow throughout. Answers are
built with the gateway's own response models (and events with the event models),
so an example that no longer fits its model fails at import; the unit test
``test_openapi_examples`` also validates each one against the document's schema.
Error bodies are in ``tributary_gateway.error_examples``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sse_starlette import ServerSentEvent

from tributary_gateway.openapi import marked
from tributary_gateway.schemas import (
    BudgetView,
    CallList,
    InputAnsweredView,
    InputRequestView,
    KeyCreated,
    KeyList,
    KeyView,
    Readiness,
    StepView,
    StreamTokenIssued,
    UsageView,
    WorkflowAccepted,
    WorkflowCancelledView,
    WorkflowLinks,
    WorkflowList,
    WorkflowSummary,
    WorkflowView,
)
from tributary_gateway.stream_tokens import StreamGrant, sign_stream_token
from tributary_shared.core.access import DEFAULT_SCOPES, Scope
from tributary_shared.core.events import (
    EventEnvelope,
    LLMCallBody,
    LLMCalled,
    LLMRequestRecord,
    LLMResponseRecord,
    LLMTry,
    PlanCreated,
    PlannedStep,
    RecordedToolCall,
    StepCompleted,
    StepStarted,
    TokenUsage,
    ToolCallBody,
    ToolCalled,
    WorkflowCompleted,
    WorkflowOptions,
    WorkflowRequested,
)
from tributary_shared.core.keys import listing_member
from tributary_shared.core.status import StepStatus, WorkflowStatus

__all__ = [
    "ACCEPTED",
    "ACCEPTED_REPLAYED",
    "ANSWER_BODY",
    "CALL_LIST",
    "CANCELLED",
    "CANCELLED_DEFAULT_REASON",
    "CANCEL_BODY",
    "CREATE_ADMIN_KEY",
    "CREATE_FOR_TENANT",
    "CREATE_KEY",
    "CREATE_MINIMAL",
    "CREATE_WITH_OPTIONS",
    "EVENT_STREAM",
    "HEALTHY",
    "INPUT_ANSWERED",
    "KEY_CREATED",
    "KEY_LIST",
    "NOT_READY",
    "READY",
    "STREAM_TOKEN",
    "WORKFLOW_AWAITING_INPUT",
    "WORKFLOW_COMPLETED",
    "WORKFLOW_ID",
    "WORKFLOW_LIST",
    "WORKFLOW_RUNNING",
    "Example",
    "openapi_examples",
]


@dataclass(frozen=True)
class Example:
    """One named example: ``name`` keys it in the document, ``summary`` labels it in the UIs."""

    name: str
    summary: str
    value: Any


def openapi_examples(*examples: Example) -> dict[str, Any]:
    """An OpenAPI ``examples`` map (also what ``Body(openapi_examples=...)`` takes)."""
    names = [example.name for example in examples]
    if len(set(names)) != len(names):  # a second one would silently replace the first
        raise ValueError(f"example names repeat: {names}")
    return {e.name: {"summary": e.summary, **marked(e.value)} for e in examples}


def _json(model: BaseModel) -> Any:
    return model.model_dump(mode="json")


def _position(at: datetime) -> str:
    """The log position (Redis stream id) of an entry written at ``at``."""
    return f"{int(at.timestamp() * 1000)}-0"


# One workflow, followed from its request to its answer.
WORKFLOW_ID = "wf_4f1c2a9e7b3d4c58a6e0f2b19d7c3e85"
_TENANT = "acme"
_TASK = "Compare the three largest EU heat-pump makers by 2025 revenue and summarise the trend."
_CREATED = datetime(2026, 11, 30, 10, 0, 0, 125000, tzinfo=UTC)
_ENDED = _CREATED + timedelta(seconds=41, microseconds=310000)
_OPTIONS = WorkflowOptions(
    max_steps=4,
    token_budget=50_000,
    deadline_s=900,
    on_budget_exhausted="partial",
    metadata={"team": "research", "ticket": "RSCH-2041"},
)
_LINKS = WorkflowLinks(
    self=f"/v1/workflows/{WORKFLOW_ID}",
    events=f"/v1/workflows/{WORKFLOW_ID}/events",
    calls=f"/v1/workflows/{WORKFLOW_ID}/calls",
)
_MODEL = "gpt-4o-mini"
_DEPLOYMENT = "openai"

# --- Request bodies ---------------------------------------------------------------

CREATE_MINIMAL = Example(
    "minimal", "Only the task; the options take their defaults", {"task": _TASK}
)
CREATE_WITH_OPTIONS = Example(
    "with_options",
    "A task with bounds: steps, token budget, deadline, and labels to filter on",
    {"task": _TASK, "options": _OPTIONS.model_dump(mode="json", exclude_none=True)},
)
CREATE_FOR_TENANT = Example(
    "for_another_tenant",
    "An admin key starts a workflow for another tenant",
    {"task": "Draft the weekly status mail from the linked tickets.", "tenant_id": "globex"},
)
CANCEL_BODY = Example(
    "with_reason", "A reason, kept with the workflow", {"reason": "superseded by RSCH-2042"}
)
CREATE_KEY = Example(
    "tenant_key",
    "A key for one tenant's job: it may start and read workflows",
    {"tenant_id": _TENANT, "scopes": ["read", "start"], "label": "nightly report job"},
)
CREATE_ADMIN_KEY = Example(
    "admin_key",
    "An admin key: every scope, every tenant, and key management",
    {"tenant_id": "ops", "scopes": ["admin"], "label": "on-call operator"},
)

# --- Workflows --------------------------------------------------------------------

ACCEPTED = Example(
    "accepted",
    "Accepted: the workflow is queued for planning",
    _json(WorkflowAccepted(workflow_id=WORKFLOW_ID, status=WorkflowStatus.PENDING, links=_LINKS)),
)
ACCEPTED_REPLAYED = Example(
    "replayed",
    "A retry with the same Idempotency-Key: the first workflow, as it is now",
    _json(WorkflowAccepted(workflow_id=WORKFLOW_ID, status=WorkflowStatus.RUNNING, links=_LINKS)),
)

_STEPS = (
    PlannedStep(
        step_id="s1",
        index=0,
        title="Find 2025 revenues",
        instruction="Find the 2025 revenue of Daikin Europe, Vaillant and Viessmann.",
    ),
    PlannedStep(
        step_id="s2",
        index=1,
        title="Compare and summarise",
        instruction="Rank the three by revenue and describe the trend against 2024.",
        depends_on=("s1",),
    ),
)
_S1_RESULT = "Daikin Europe EUR 9.8bn, Vaillant EUR 3.4bn, Viessmann EUR 2.9bn (2025)."
_S2_RESULT = "1. Daikin Europe 9.8bn, 2. Vaillant 3.4bn, 3. Viessmann 2.9bn; all up on 2024."
_ANSWER = (
    "Daikin Europe leads with EUR 9.8bn, ahead of Vaillant (EUR 3.4bn) and Viessmann "
    "(EUR 2.9bn); all three grew on 2024 as heat-pump demand recovered."
)
_S1_USAGE = TokenUsage(prompt_tokens=2_140, completion_tokens=310)
_S2_USAGE = TokenUsage(prompt_tokens=980, completion_tokens=220)
_TOTAL_USAGE = TokenUsage(prompt_tokens=3_920, completion_tokens=760)


def _step(
    planned: PlannedStep,
    status: StepStatus,
    *,
    result: str | None,
    usage: TokenUsage,
    iterations: int,
) -> StepView:
    return StepView(
        step_id=planned.step_id,
        index=planned.index,
        title=planned.title,
        instruction=planned.instruction,
        status=status,
        result=result,
        error=None,
        iterations=iterations,
        attempt=1 if status is not StepStatus.PENDING else 0,
        usage=UsageView.of(usage),
        models=[_MODEL] if iterations else [],
        depends_on=list(planned.depends_on),
    )


def _view(
    status: WorkflowStatus,
    steps: list[StepView],
    *,
    result: str | None,
    usage: TokenUsage,
    updated: datetime,
    input_requests: list[InputRequestView] | None = None,
) -> WorkflowView:
    return WorkflowView(
        workflow_id=WORKFLOW_ID,
        tenant_id=_TENANT,
        status=status,
        task=_TASK,
        options=_OPTIONS.model_dump(mode="json"),
        created_at=_CREATED.isoformat(),
        updated_at=updated.isoformat(),
        steps=steps,
        result=result,
        partial=False,
        error=None,
        usage=UsageView.of(usage),
        budget=BudgetView(
            limit_tokens=_OPTIONS.token_budget,
            used_tokens=usage.total_tokens,
            limit_cost_usd=None,
            used_cost_usd=0.0,
            exhausted=False,
            on_exhausted="partial",
        ),
        links=_LINKS,
        input_requests=input_requests or [],
    )


WORKFLOW_COMPLETED = Example(
    "completed",
    "Completed: every step's result and the answer",
    _json(
        _view(
            WorkflowStatus.COMPLETED,
            [
                _step(
                    _STEPS[0],
                    StepStatus.COMPLETED,
                    result=_S1_RESULT,
                    usage=_S1_USAGE,
                    iterations=2,
                ),
                _step(
                    _STEPS[1],
                    StepStatus.COMPLETED,
                    result=_S2_RESULT,
                    usage=_S2_USAGE,
                    iterations=1,
                ),
            ],
            result=_ANSWER,
            usage=_TOTAL_USAGE,
            updated=_ENDED,
        )
    ),
)
WORKFLOW_RUNNING = Example(
    "running",
    "Running: the first step works, the second waits for it",
    _json(
        _view(
            WorkflowStatus.RUNNING,
            [
                _step(_STEPS[0], StepStatus.RUNNING, result=None, usage=TokenUsage(), iterations=0),
                _step(_STEPS[1], StepStatus.PENDING, result=None, usage=TokenUsage(), iterations=0),
            ],
            result=None,
            usage=TokenUsage(prompt_tokens=640, completion_tokens=120),
            updated=_CREATED + timedelta(seconds=4),
        )
    ),
)

_ASKED_AT = _CREATED + timedelta(seconds=6)
_QUESTION = InputRequestView(
    request_id="in_9c41d2e07a6b4f13b58e0d2c7a19f6e4",
    kind="question",
    step_id="s1",
    question="Count Viessmann (now Carrier) as an EU maker?",
    choices=["yes", "no"],
    requested_at=_ASKED_AT.isoformat(),
    expires_at=(_ASKED_AT + timedelta(hours=1)).isoformat(),
)
WORKFLOW_AWAITING_INPUT = Example(
    "awaiting_input",
    "Awaiting input: the first step's agent asked a question",
    _json(
        _view(
            WorkflowStatus.AWAITING_INPUT,
            [
                _step(
                    _STEPS[0],
                    StepStatus.AWAITING_INPUT,
                    result=None,
                    usage=TokenUsage(),
                    iterations=0,
                ),
                _step(_STEPS[1], StepStatus.PENDING, result=None, usage=TokenUsage(), iterations=0),
            ],
            result=None,
            usage=TokenUsage(prompt_tokens=640, completion_tokens=120),
            updated=_ASKED_AT,
            input_requests=[_QUESTION],
        )
    ),
)
ANSWER_BODY = Example(
    "choice", "One of the request's choices", {"request_id": _QUESTION.request_id, "answer": "no"}
)
INPUT_ANSWERED = Example(
    "answered",
    "Answered: the paused step resumes",
    _json(
        InputAnsweredView(
            **_QUESTION.model_dump(),
            state="answered",
            answer="no",
            answered_at=(_ASKED_AT + timedelta(minutes=3)).isoformat(),
        )
    ),
)

_OLDER_ID = "wf_0b7d5e3c1a9f4e2d8c6b4a2f0e8d6c4b"
_OLDER_CREATED = _CREATED - timedelta(minutes=12)
WORKFLOW_LIST = Example(
    "page",
    "A page of two workflows; more follow",
    _json(
        WorkflowList(
            workflows=[
                WorkflowSummary(
                    workflow_id=WORKFLOW_ID,
                    tenant_id=_TENANT,
                    status=WorkflowStatus.COMPLETED,
                    task=_TASK,
                    created_at=_CREATED.isoformat(),
                    updated_at=_ENDED.isoformat(),
                    links=_LINKS,
                ),
                WorkflowSummary(
                    workflow_id=_OLDER_ID,
                    tenant_id=_TENANT,
                    status=WorkflowStatus.FAILED,
                    task="Translate the release notes into German.",
                    created_at=_OLDER_CREATED.isoformat(),
                    updated_at=(_OLDER_CREATED + timedelta(seconds=9)).isoformat(),
                    links=WorkflowLinks(
                        self=f"/v1/workflows/{_OLDER_ID}",
                        events=f"/v1/workflows/{_OLDER_ID}/events",
                        calls=f"/v1/workflows/{_OLDER_ID}/calls",
                    ),
                ),
            ],
            next_cursor=listing_member(_OLDER_CREATED, _OLDER_ID),
        )
    ),
)

CANCELLED = Example(
    "cancelled",
    "Cancelled with the reason sent",
    _json(
        WorkflowCancelledView(
            workflow_id=WORKFLOW_ID,
            status=WorkflowStatus.CANCELLED,
            reason=CANCEL_BODY.value["reason"],
        )
    ),
)
CANCELLED_DEFAULT_REASON = Example(
    "cancelled_without_body",
    "Cancelled without a body: the default reason",
    _json(
        WorkflowCancelledView(
            workflow_id=WORKFLOW_ID, status=WorkflowStatus.CANCELLED, reason="cancelled by request"
        )
    ),
)
# A real token's shape, signed with a secret no gateway has.
_TOKEN_EXPIRES = _CREATED + timedelta(minutes=5)
_TOKEN = sign_stream_token(
    StreamGrant(
        workflow_id=WORKFLOW_ID,
        tenant_id=_TENANT,
        key_id="34320cff808d",
        expires_at=int(_TOKEN_EXPIRES.timestamp()),
    ),
    secret=b"an example secret: no gateway signs with it",
)
STREAM_TOKEN = Example(
    "stream_token",
    "A token for this workflow's event stream, for five minutes",
    _json(
        StreamTokenIssued(
            token=_TOKEN,
            expires_at=_TOKEN_EXPIRES,
            stream_url=f"/v1/workflows/{WORKFLOW_ID}/events?token={_TOKEN}",
        )
    ),
)

# --- Recorded calls ---------------------------------------------------------------

_CALL_STARTED = _CREATED + timedelta(seconds=3)
_LLM_CALL = LLMCalled(
    event_id="6d0f7c1e2b8a4f5d9e3c7b1a5f9d3e7c",
    workflow_id=WORKFLOW_ID,
    tenant_id=_TENANT,
    occurred_at=_CALL_STARTED + timedelta(milliseconds=1840),
    role="agent",
    step_id="s1",
    attempt=1,
    iteration=1,
    sequence=1,
    started_at=_CALL_STARTED,
    duration_ms=1840,
    body=LLMCallBody(
        request=LLMRequestRecord(
            messages=(
                {"role": "system", "content": "You carry out one step of a plan. ..."},
                {"role": "user", "content": _STEPS[0].instruction},
            ),
            tools=(
                {
                    "type": "function",
                    "function": {
                        "name": "calculator",
                        "description": "Evaluate an arithmetic expression exactly.",
                        "parameters": {
                            "type": "object",
                            "properties": {"expression": {"type": "string"}},
                            "required": ["expression"],
                        },
                    },
                },
            ),
            models=(_MODEL,),
            max_tokens=1024,
        ),
        response=LLMResponseRecord(
            content=None,
            tool_calls=(
                RecordedToolCall(
                    id="call_8Jq2", name="calculator", arguments='{"expression":"9.8/3.4"}'
                ),
            ),
            finish_reason="tool_calls",
            model=_MODEL,
            deployment=_DEPLOYMENT,
            usage=TokenUsage(prompt_tokens=1_020, completion_tokens=42),
        ),
    ),
    tries=(
        LLMTry(model=_MODEL, deployment=_DEPLOYMENT, started_at=_CALL_STARTED, duration_ms=1831),
    ),
)
_TOOL_STARTED = _CALL_STARTED + timedelta(milliseconds=1850)
_TOOL_CALL = ToolCalled(
    event_id="a2c4e6f8b0d24f6a8c0e2b4d6f8a0c2e",
    workflow_id=WORKFLOW_ID,
    tenant_id=_TENANT,
    occurred_at=_TOOL_STARTED + timedelta(milliseconds=3),
    role="agent",
    step_id="s1",
    attempt=1,
    iteration=1,
    sequence=1,
    started_at=_TOOL_STARTED,
    duration_ms=3,
    call_id="call_8Jq2",
    name="calculator",
    body=ToolCallBody(arguments='{"expression":"9.8/3.4"}', result="9.8/3.4 = 2.88235294118"),
)
CALL_LIST = Example(
    "page",
    "An LLM call that asked for a tool, and the tool call; more may follow",
    _json(CallList(calls=[_LLM_CALL, _TOOL_CALL], next_after=_position(_TOOL_CALL.occurred_at))),
)

# --- The event stream -------------------------------------------------------------


def _sse(*events: EventEnvelope) -> str:
    """The stream as the gateway writes it: each event's log position as its ``id``."""
    return "".join(
        ServerSentEvent(
            data=event.model_dump_json(), event=event.type, id=_position(event.occurred_at)
        )
        .encode()
        .decode()
        for event in events
    )


def _event_at(seconds: float) -> dict[str, Any]:
    return {
        "workflow_id": WORKFLOW_ID,
        "tenant_id": _TENANT,
        "occurred_at": _CREATED + timedelta(seconds=seconds),
    }


EVENT_STREAM = Example(
    "from_request_to_answer",
    "A workflow followed from its request to its answer (abridged)",
    _sse(
        WorkflowRequested(
            event_id="e1d2c3b4a5f60718293a4b5c6d7e8f90",
            task=_TASK,
            options=_OPTIONS,
            **_event_at(0),
        ),
        PlanCreated(event_id="f0e1d2c3b4a5968778695a4b3c2d1e0f", steps=_STEPS, **_event_at(2.285)),
        StepStarted(
            event_id="0a1b2c3d4e5f60718293a4b5c6d7e8f9",
            step_id="s1",
            attempt=1,
            **_event_at(2.308),
        ),
        StepCompleted(
            event_id="1b2c3d4e5f60718293a4b5c6d7e8f90a",
            step_id="s1",
            result=_S1_RESULT,
            iterations=2,
            usage=_S1_USAGE,
            models=(_MODEL,),
            **_event_at(21.855),
        ),
        WorkflowCompleted(
            event_id="2c3d4e5f60718293a4b5c6d7e8f90a1b",
            result=_ANSWER,
            usage=_TOTAL_USAGE,
            **_event_at(41.31),
        ),
    ),
)

# --- Keys -------------------------------------------------------------------------

_KEY_CREATED_AT = datetime(2026, 11, 30, 9, 12, 44, 318000, tzinfo=UTC)
_KEY_ID = "5e610a30f3dc"
KEY_CREATED = Example(
    "issued",
    "The new key: `key` is shown this once",
    _json(
        KeyCreated(
            key_id=_KEY_ID,
            tenant_id=_TENANT,
            scopes=[Scope.READ, Scope.START],
            label="nightly report job",
            created_at=_KEY_CREATED_AT,
            key=f"trb_{_KEY_ID}_2Ina80mMPuCLkwGKiRceS5eSRZyuQ5Mg8Fmhq67d",
        )
    ),
)
KEY_LIST = Example(
    "keys",
    "An admin key and two of a tenant's keys",
    _json(
        KeyList(
            keys=[
                KeyView(
                    key_id="0c4f9e2a7b11",
                    tenant_id="ops",
                    scopes=[Scope.ADMIN],
                    label="on-call operator",
                    created_at=_KEY_CREATED_AT - timedelta(days=30),
                ),
                KeyView(
                    key_id="9a3e6d2b8c40",
                    tenant_id=_TENANT,
                    scopes=sorted(DEFAULT_SCOPES),
                    label="support portal",
                    created_at=_KEY_CREATED_AT - timedelta(days=2),
                ),
                KeyView(
                    key_id=_KEY_ID,
                    tenant_id=_TENANT,
                    scopes=[Scope.READ, Scope.START],
                    label="nightly report job",
                    created_at=_KEY_CREATED_AT,
                ),
            ]
        )
    ),
)

# --- Health -----------------------------------------------------------------------

HEALTHY = Example("serving", "The process serves requests", {"status": "ok"})
READY = Example(
    "ready",
    "Redis and Kafka are reachable",
    _json(Readiness(status="ready", redis="ok", kafka="ok")),
)
NOT_READY = Example(
    "kafka_unreachable",
    "Kafka cannot be reached",
    _json(Readiness(status="not ready", redis="ok", kafka="unreachable")),
)
