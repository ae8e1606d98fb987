"""One error taxonomy for every service, each class carrying its recovery policy.

    TributaryError
    ├── TransientError   retry with backoff (429, 5xx, timeouts, connection errors)
    ├── ModelError       one corrective re-prompt, then fail the step
    ├── ToolFailure      returned to the model as a tool result so it can adapt
    ├── LogicError       circuit breaker: the step stops with a clear reason
    │   └── BudgetExceeded   no further LLM call starts
    ├── FatalError       no retry: the workflow fails at once
    └── PoisonMessage    an event that can never be processed: dead-lettered

The ``code`` is stable and appears in the API, SSE events and metric labels;
the ``message`` is safe to show a user (no stack traces, provider bodies or
internal hostnames). Details belong in logs, next to the workflow id.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from tributary_shared.core.events import BudgetExhausted, ErrorInfo


class ErrorClass(StrEnum):
    TRANSIENT = "transient"
    MODEL = "model"
    TOOL = "tool"
    LOGIC = "logic"
    FATAL = "fatal"
    INTERNAL = "internal"


class Policy(StrEnum):
    RETRY = "retry"
    REPROMPT = "reprompt"
    SURFACE_TO_MODEL = "surface_to_model"
    STOP_STEP = "stop_step"
    FAIL_WORKFLOW = "fail_workflow"
    DEAD_LETTER = "dead_letter"


class TributaryError(Exception):
    error_class: ClassVar[ErrorClass] = ErrorClass.INTERNAL
    policy: ClassVar[Policy] = Policy.FAIL_WORKFLOW
    default_code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code

    @property
    def retryable(self) -> bool:
        return self.policy is Policy.RETRY

    def to_info(self) -> ErrorInfo:
        return ErrorInfo(
            code=self.code,
            message=self.message,
            error_class=self.error_class.value,
            retryable=self.retryable,
        )


class TransientError(TributaryError):
    error_class = ErrorClass.TRANSIENT
    policy = Policy.RETRY
    default_code = "transient_error"

    def __init__(
        self, message: str, *, code: str | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s


class ModelError(TributaryError):
    error_class = ErrorClass.MODEL
    policy = Policy.REPROMPT
    default_code = "model_output_invalid"


class ToolFailure(TributaryError):
    error_class = ErrorClass.TOOL
    policy = Policy.SURFACE_TO_MODEL
    default_code = "tool_failed"


class LogicError(TributaryError):
    error_class = ErrorClass.LOGIC
    policy = Policy.STOP_STEP
    default_code = "logic_error"


class BudgetExceeded(LogicError):
    """No further LLM call may start: the workflow's budget cannot cover it."""

    default_code = "budget_exhausted"

    def __init__(self, message: str, *, announcement: BudgetExhausted | None = None) -> None:
        super().__init__(message)
        # Set only for the first refusal: the event to publish about it.
        self.announcement = announcement


class FatalError(TributaryError):
    error_class = ErrorClass.FATAL
    policy = Policy.FAIL_WORKFLOW
    default_code = "fatal_error"


class PoisonMessage(TributaryError):
    error_class = ErrorClass.INTERNAL
    policy = Policy.DEAD_LETTER
    default_code = "poison_message"


def internal_error_info() -> ErrorInfo:
    """What users see of an unexpected exception: nothing of its internals."""
    return ErrorInfo(
        code="internal_error",
        message="an internal error occurred; the operator's logs have the details",
        error_class=ErrorClass.INTERNAL.value,
        retryable=False,
    )
