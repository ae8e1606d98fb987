"""The error bodies the gateway answers, word for word, as OpenAPI examples.

Each is what a route (or FastAPI's validation, or the body limit) sends for one
cause, with the default settings: ``test_gateway_error_examples`` provokes the causes
against the gateway and compares the answers with these. Messages that name a
setting's value or a ceiling are built from the setting's default or the
gateway's own exception, so they change with them.
"""

from __future__ import annotations

from typing import Any

from tributary_gateway.examples import WORKFLOW_ID, Example
from tributary_gateway.settings import GatewaySettings
from tributary_gateway.tenant_limits import CeilingExceeded
from tributary_shared.core.access import Scope

__all__ = [
    "ABOVE_CEILING",
    "ALREADY_ENDED",
    "BAD_CALLS_FLAG",
    "BAD_KEY_BODY",
    "BAD_KEY_ID",
    "BAD_LAST_EVENT_ID",
    "BAD_STREAM_MODE",
    "BAD_TENANT_QUERY",
    "BAD_TIME_BOUND",
    "BODY_NOT_UTF8",
    "BODY_TOO_LARGE",
    "CALLS_LIMIT_OUT_OF_BOUNDS",
    "IDEMPOTENCY_KEY_OF_DELETED",
    "IDEMPOTENCY_KEY_REUSED",
    "INPUT_ALREADY_ANSWERED",
    "INPUT_BODY_INVALID",
    "INPUT_NOT_A_CHOICE",
    "INPUT_REQUEST_EXPIRED",
    "INPUT_REQUEST_NOT_FOUND",
    "INPUT_WORKFLOW_ENDED",
    "INPUT_WORKFLOW_NOT_FOUND",
    "INVALID_KEY",
    "KEY_NOT_FOUND",
    "KEY_STREAMS_FULL",
    "LIST_LIMIT_OUT_OF_BOUNDS",
    "NOT_QUEUED",
    "NOT_QUEUED_KEYED",
    "NO_KEY",
    "OPTION_OUT_OF_BOUNDS",
    "RATE_LIMITED",
    "REASON_NOT_TEXT",
    "REPLICA_STREAMS_FULL",
    "STILL_ACTIVE",
    "STORE_UNAVAILABLE",
    "STREAM_TOKEN_EXPIRED",
    "STREAM_TOKEN_KEY_REVOKED",
    "STREAM_TOKEN_OTHER_WORKFLOW",
    "TASK_BLANK",
    "TASK_MISSING",
    "TASK_TOO_LONG",
    "TENANT_AT_CEILING",
    "TIME_BOUNDS_REVERSED",
    "WORKFLOW_NOT_FOUND",
    "lacks_scope",
    "other_tenant",
]

_DEFAULTS = GatewaySettings.model_fields
_MAX_BODY_BYTES: int = _DEFAULTS["max_body_bytes"].default
_MAX_TASK_CHARS: int = _DEFAULTS["max_task_chars"].default
_MAX_STREAMS_PER_KEY: int = _DEFAULTS["max_streams_per_key"].default


def _problem(name: str, summary: str, detail: str) -> Example:
    return Example(name, summary, {"detail": detail})


def _invalid(name: str, summary: str, *errors: dict[str, Any]) -> Example:
    """A ``422`` of FastAPI's validation: the fields that fail, each with where and why."""
    return Example(name, summary, {"detail": list(errors)})


def _field(loc: list[str | int], kind: str, msg: str, given: Any, **ctx: Any) -> dict[str, Any]:
    error = {"type": kind, "loc": loc, "msg": msg, "input": given}
    return {**error, "ctx": ctx} if ctx else error


# --- 401, 403: who is calling --------------------------------------------------

NO_KEY = _problem(
    "missing_key",
    "No `Authorization: Bearer` header",
    "an API key is required: send it as a Bearer token in the Authorization header",
)
INVALID_KEY = _problem(
    "invalid_key",
    "A key that is malformed, unknown or revoked",
    "the API key is not valid (unknown or revoked)",
)

# The event stream's ``?token=`` (``stream_tokens``, ``stream_access``).
STREAM_TOKEN_EXPIRED = _problem(
    "stream_token_expired",
    "A stream token past its expiry: ask for a new one",
    "the stream token has expired; ask for a new one",
)
STREAM_TOKEN_OTHER_WORKFLOW = _problem(
    "stream_token_other_workflow",
    "A stream token for another workflow",
    "the stream token is for another workflow",
)
STREAM_TOKEN_KEY_REVOKED = _problem(
    "stream_token_key_revoked",
    "A stream token of a key revoked since",
    "the API key this stream token was issued to was revoked",
)


def lacks_scope(scope: Scope) -> Example:
    """The ``403`` of a key without ``scope``."""
    return _problem(
        "lacks_scope",
        f"The key lacks the `{scope.value}` scope",
        f"this API key lacks the {scope.value!r} scope",
    )


def other_tenant(doing: str) -> Example:
    """The ``403`` of a tenant key naming another tenant (``doing``: what it asked)."""
    return _problem(
        "other_tenant",
        "A tenant key names another tenant",
        f"only an admin API key may {doing} another tenant",
    )


# --- 404, 409: the resource ----------------------------------------------------

WORKFLOW_NOT_FOUND = _problem(
    "not_found",
    "No such workflow, or another tenant's",
    f"workflow {WORKFLOW_ID!r} not found",
)
KEY_NOT_FOUND = _problem("not_found", "No key with this id", "no API key '5e610a30f3dc'")
ALREADY_ENDED = _problem(
    "already_ended", "The workflow has ended already", "workflow has already ended: completed"
)
STILL_ACTIVE = _problem(
    "still_running",
    "The workflow has not ended",
    "workflow is running: cancel it, or wait for it to end",
)
IDEMPOTENCY_KEY_OF_DELETED = _problem(
    "workflow_deleted",
    "The `Idempotency-Key` started a workflow since deleted",
    "the workflow this Idempotency-Key started was deleted; use a new key",
)

# --- 400, 413: the body as bytes -----------------------------------------------

BODY_NOT_UTF8 = _problem(
    "not_utf8", "The body is not JSON text (not UTF-8)", "There was an error parsing the body"
)
BODY_TOO_LARGE = _problem(
    "too_large",
    "The body is over `TRIBUTARY_GATEWAY_MAX_BODY_BYTES` (here its default)",
    f"the request body is larger than {_MAX_BODY_BYTES} bytes",
)
BAD_LAST_EVENT_ID = _problem(
    "bad_last_event_id",
    "`Last-Event-ID` is not an event id of the stream",
    "Last-Event-ID must be an event id from this stream",
)

# --- 422: the request's fields and the gateway's rules -------------------------

TASK_MISSING = _invalid(
    "task_missing",
    "A field is missing",
    _field(["body", "task"], "missing", "Field required", {"options": {"max_steps": 4}}),
)
OPTION_OUT_OF_BOUNDS = _invalid(
    "option_out_of_bounds",
    "An option is out of its bounds",
    _field(
        ["body", "options", "max_steps"],
        "less_than_equal",
        "Input should be less than or equal to 50",
        80,
        le=50,
    ),
)
TASK_BLANK = _problem("task_blank", "The task is blank", "task must not be blank")
TASK_TOO_LONG = _problem(
    "task_too_long",
    "The task is over `TRIBUTARY_GATEWAY_MAX_TASK_CHARS` (here its default)",
    f"task is longer than {_MAX_TASK_CHARS} characters",
)
ABOVE_CEILING = _problem(
    "above_tenant_ceiling",
    "An option is above the tenant's ceiling",
    str(CeilingExceeded("token_budget", 2_000_000, "max_token_budget", 1_000_000)),
)
IDEMPOTENCY_KEY_REUSED = _problem(
    "idempotency_key_reused",
    "The `Idempotency-Key` was used for a different request",
    "Idempotency-Key was already used for a different request",
)
LIST_LIMIT_OUT_OF_BOUNDS = _invalid(
    "limit_out_of_bounds",
    "A query parameter is out of its bounds",
    _field(
        ["query", "limit"],
        "less_than_equal",
        "Input should be less than or equal to 100",
        "500",
        le=100,
    ),
)
CALLS_LIMIT_OUT_OF_BOUNDS = _invalid(
    "limit_out_of_bounds",
    "A query parameter is out of its bounds",
    _field(
        ["query", "limit"],
        "less_than_equal",
        "Input should be less than or equal to 500",
        "1000",
        le=500,
    ),
)
BAD_TIME_BOUND = _invalid(
    "not_a_date_time",
    "A time bound is not an RFC 3339 date-time",
    _field(
        ["query", "created_after"],
        "string_pattern_mismatch",
        "String should match pattern "
        r"'^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$'",
        "yesterday",
        pattern=r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$",
    ),
)
TIME_BOUNDS_REVERSED = Example(
    "bounds_reversed",
    "`created_after` is not earlier than `created_before`",
    {
        "detail": [
            {
                "type": "value_error",
                "loc": ["query", "created_after"],
                "msg": "must be earlier than created_before",
            }
        ]
    },
)
REASON_NOT_TEXT = _invalid(
    "reason_not_text",
    "The reason is not a string",
    _field(["body", "reason"], "string_type", "Input should be a valid string", 42),
)
BAD_CALLS_FLAG = _invalid(
    "calls_not_boolean",
    "`calls` is not a boolean",
    _field(
        ["query", "calls"],
        "bool_parsing",
        "Input should be a valid boolean, unable to interpret input",
        "maybe",
    ),
)
BAD_STREAM_MODE = _invalid(
    "unknown_stream_mode",
    "`mode` is none of the stream modes",
    _field(
        ["query", "mode"],
        "enum",
        "Input should be 'lifecycle', 'tools' or 'tokens'",
        "all",
        expected="'lifecycle', 'tools' or 'tokens'",
    ),
)
_TENANT_PATTERN_MSG = "String should match pattern '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'"
BAD_KEY_BODY = _invalid(
    "bad_tenant_and_scope",
    "A tenant id with a space, and a scope that does not exist",
    _field(
        ["body", "tenant_id"],
        "string_pattern_mismatch",
        _TENANT_PATTERN_MSG,
        "acme corp",
        pattern="^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
    ),
    _field(
        ["body", "scopes", 0],
        "enum",
        "Input should be 'start', 'read', 'cancel', 'input', 'delete' or 'admin'",
        "write",
        expected="'start', 'read', 'cancel', 'input', 'delete' or 'admin'",
    ),
)
BAD_TENANT_QUERY = _invalid(
    "bad_tenant",
    "A tenant id that cannot be one",
    _field(
        ["query", "tenant"],
        "string_pattern_mismatch",
        _TENANT_PATTERN_MSG,
        "acme:eu",
        pattern="^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
    ),
)
BAD_KEY_ID = _invalid(
    "bad_key_id",
    "Not a key id (12 hex digits): one digit short",
    _field(
        ["path", "key_id"],
        "string_pattern_mismatch",
        "String should match pattern '^[0-9a-f]{12}$'",
        "5e610a30f3d",
        pattern="^[0-9a-f]{12}$",
    ),
)

# --- 429, 503: come back later --------------------------------------------------

RATE_LIMITED = _problem(
    "rate_limited",
    "The key sends more requests than its rate",
    "too many requests for this API key; retry after the time Retry-After gives",
)
TENANT_AT_CEILING = _problem(
    "tenant_at_running_ceiling",
    "The tenant runs as many workflows as its ceiling allows",
    "this tenant runs as many workflows as its ceiling max_running_workflows (10) allows; "
    "retry once one has ended",
)
REPLICA_STREAMS_FULL = _problem(
    "replica_streams_full",
    "This gateway replica serves its most event streams",
    "this gateway replica serves as many event streams as it may; retry shortly",
)
KEY_STREAMS_FULL = _problem(
    "key_streams_full",
    "The key holds its most event streams on this replica",
    f"this API key holds {_MAX_STREAMS_PER_KEY} event streams on this gateway replica, its "
    "most; close one or retry shortly",
)
STORE_UNAVAILABLE = _problem(
    "redis_unavailable",
    "Redis is unavailable",
    "the workflow store is unavailable; please retry",
)
NOT_QUEUED = _problem(
    "kafka_unavailable",
    "Kafka did not take the request (no `Idempotency-Key`): nothing was started",
    "the workflow could not be queued; please retry",
)
NOT_QUEUED_KEYED = _problem(
    "kafka_unavailable_keyed",
    "Kafka did not take the request (with an `Idempotency-Key`): retry with the same key",
    "the workflow could not be queued yet; retry with the same Idempotency-Key",
)


# --- answering an input request: each refusal with its code -------------------

_REQUEST_ID = "in_9c41d2e07a6b4f13b58e0d2c7a19f6e4"


def _refused(name: str, summary: str, code: str, detail: str) -> Example:
    return Example(name, summary, {"detail": detail, "code": code})


INPUT_WORKFLOW_NOT_FOUND = _refused(
    "workflow_not_found",
    "No such workflow of this key's tenant",
    "workflow_not_found",
    f"workflow {WORKFLOW_ID!r} not found",
)
INPUT_REQUEST_NOT_FOUND = _refused(
    "input_request_not_found",
    "The workflow has no such input request",
    "input_request_not_found",
    f"workflow {WORKFLOW_ID!r} has no input request {_REQUEST_ID!r}",
)
INPUT_ALREADY_ANSWERED = _refused(
    "input_already_answered",
    "Answered before",
    "input_already_answered",
    f"input request {_REQUEST_ID!r} was answered",
)
INPUT_REQUEST_EXPIRED = _refused(
    "input_request_expired",
    "Past its expiry",
    "input_request_expired",
    f"input request {_REQUEST_ID!r} has expired",
)
INPUT_WORKFLOW_ENDED = _refused(
    "workflow_ended",
    "The workflow has ended",
    "workflow_ended",
    "workflow has already ended: cancelled",
)
INPUT_NOT_A_CHOICE = _refused(
    "input_answer_not_a_choice",
    "Not one of the request's choices",
    "input_answer_not_a_choice",
    "the answer must be one of ['yes', 'no']",
)
INPUT_BODY_INVALID = _invalid(
    "answer_missing",
    "A field is missing",
    _field(["body", "answer"], "missing", "Field required", {"request_id": _REQUEST_ID}),
)
