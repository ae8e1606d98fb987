"""Typed models of the admin API: rules, scripted responses, recorded requests, config.

They are shared by the server (which validates admin requests with them) and the
admin client (which builds and parses them), so both sides agree on one schema.
Unknown fields are rejected: a typo such as ``"contain"`` in a test's rule would
otherwise silently match every request.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )


class Match(_Strict):
    """Conditions a chat request must meet for a rule to answer it; all given ones must hold.

    An empty match answers every request, which is handy for a single-test server.
    """

    contains: str | None = None
    """Substring of the text of any message (system, user, assistant or tool)."""
    last_user_contains: str | None = None
    """Substring of the last user message only, to target one step of a workflow."""
    model: str | None = None
    """Exact requested model name."""
    has_tools: bool | None = None
    """Whether the request offers tools."""
    has_tool_result: bool | None = None
    """Whether the conversation already contains a tool result (role ``tool``)."""
    schema_name: str | None = None
    """Name of the ``response_format`` JSON schema (e.g. ``tributary_plan``)."""


class ToolCallSpec(_Strict):
    """One tool call of a scripted response."""

    name: str
    arguments: str | dict[str, Any] = Field(default_factory=dict)
    """An object is JSON-encoded; a string is sent verbatim (so it may be malformed JSON)."""
    id: str | None = None
    """Tool call id; generated when omitted."""


class ErrorSpec(_Strict):
    """Body of an OpenAI-style error; unset fields get defaults that depend on the status."""

    message: str | None = None
    type: str | None = None
    code: str | None = None
    param: str | None = None


class UsageSpec(_Strict):
    """Usage override; fields left out keep the deterministic estimate."""

    prompt_tokens: int | None = Field(default=None, ge=0)
    completion_tokens: int | None = Field(default=None, ge=0)
    total_tokens: int | None = Field(default=None, ge=0)


class ScriptedResponse(_Strict):
    """One scripted answer.

    Fields combine: e.g. ``content`` + ``finish_reason="length"``, or ``tool_calls`` +
    ``delay_ms``. A response with none of ``content``/``tool_calls``/``json``/
    ``refusal``/``status``/``hang``/``close_without_answer`` falls back to the
    automatic answer, so
    ``{"delay_ms": 500}`` just slows one workflow down and ``{"finish_reason": "length"}``
    truncates the automatic answer.
    """

    content: str | None = None
    tool_calls: list[ToolCallSpec] | None = None
    json_body: Any = Field(default=None, alias="json")
    """Serialised with ``json.dumps`` into the message content (None: not given)."""
    refusal: str | None = None
    finish_reason: FinishReason | None = None
    usage: UsageSpec | None = None
    delay_ms: int = Field(default=0, ge=0)
    """Extra wait before answering (added to the global latency)."""
    hang: bool = False
    """Never answer: the request stays open until the client gives up or the server stops."""
    close_without_answer: bool = False
    """Close the connection without sending any response (after ``delay_ms``), as a
    server closing an idle kept-alive connection the client has just sent on: the
    client sees "Server disconnected without sending a response"."""
    status: int | None = Field(default=None, ge=100, le=599)
    """An HTTP status >= 400 makes this an error response."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra response headers, e.g. ``{"Retry-After": "1"}``."""
    error: ErrorSpec | None = None
    stream_break_after: int | None = Field(default=None, ge=0)
    """Streamed answers only: the server sends this many chunks, then drops the
    connection (an endpoint failing mid-answer); an answer in one body is unaffected."""
    stream_chunk_delay_ms: int = Field(default=0, ge=0, le=60_000)
    """Streamed answers only: the server pauses this long before each chunk after the
    first, so a client sees the answer arrive piece by piece (a slow model)."""

    @model_validator(mode="after")
    def _check_exclusive(self) -> ScriptedResponse:
        if self.has_json and self.content is not None:
            raise ValueError("'json' and 'content' are mutually exclusive")
        if self.error is not None and not self.is_error:
            raise ValueError("'error' needs a 'status' >= 400")
        return self

    @property
    def has_json(self) -> bool:
        # None means "not given" so that dumped and re-validated models keep their meaning;
        # a literal ``null`` body can still be sent as ``{"content": "null"}``.
        return self.json_body is not None

    @property
    def is_error(self) -> bool:
        return self.status is not None and self.status >= 400

    @property
    def defines_message(self) -> bool:
        """Whether this response supplies the message itself (else the auto answer is used)."""
        return (
            self.content is not None
            or self.tool_calls is not None
            or self.has_json
            or self.refusal is not None
        )


Response = ScriptedResponse
"""Alias matching the admin API's vocabulary (a rule has ``responses``)."""


class Rule(_Strict):
    """A matcher plus the responses it serves, one per matching request, in order."""

    id: str | None = None
    """Identifier reported in recorded requests; generated (``rule-N``) when omitted."""
    match: Match = Field(default_factory=Match)
    responses: list[ScriptedResponse] = Field(min_length=1)
    repeat_last: bool = True
    """Keep serving the last response forever; when false the rule stops matching once
    every response was served, and later rules or the automatic behaviour apply."""


class RuleStatus(BaseModel):
    """A rule as stored by the server, with how often it has answered."""

    id: str
    rule: Rule
    served: int
    exhausted: bool


class RecordedRequest(BaseModel):
    """A chat completion request as the server saw it."""

    seq: int
    """Arrival order, starting at 1 (not reset by clearing)."""
    timestamp: float
    """Arrival time, seconds since the epoch."""
    model: str
    messages: list[dict[str, Any]]
    tools: list[str]
    """Names of the offered tools."""
    response_format: str | None
    """JSON schema name for ``json_schema`` formats, else the format type, or None."""
    stream: bool
    rule_id: str | None
    """Rule that answered, or None for the automatic behaviour."""


class ServerConfig(_Strict):
    """Global settings, changed at run time with ``POST /_admin/config``."""

    latency_ms: int = Field(default=0, ge=0)
    """Wait before every chat completion answer."""
    max_recorded_requests: int = Field(default=10_000, ge=0)
    """Oldest recorded requests are dropped past this, so long benchmarks stay bounded."""
    models: list[str] = Field(default_factory=lambda: ["scripted-llm"])
    """Model ids listed by ``GET /v1/models`` (any model name is accepted anyway)."""
    rate_limit_rpm: int = Field(default=0, ge=0)
    """Chat completions accepted per minute; beyond it 429 (see ``ratelimit``). 0: no limit."""
    rate_limit_burst: int = Field(default=0, ge=0)
    """How many of them may come at once (the bucket's size); 0: the minute's limit."""


class ConfigUpdate(_Strict):
    """Partial update of :class:`ServerConfig`; omitted fields are unchanged."""

    latency_ms: int | None = Field(default=None, ge=0)
    max_recorded_requests: int | None = Field(default=None, ge=0)
    models: list[str] | None = None
    rate_limit_rpm: int | None = Field(default=None, ge=0)
    """Setting it (or the burst) starts the limit afresh: a full bucket, counts at zero."""
    rate_limit_burst: int | None = Field(default=None, ge=0)
