"""One error tree for every service, and the one table that says how each class recovers.

    TributaryError          internal: the step fails
    ├── TransientError      retry with backoff (Retry-After waited out), the next
    │                       deployment of the chain taking over when one's tries run
    │                       out, round the chain while the patience and the deadline
    │                       allow; then the step fails
    ├── ModelError          one corrective re-prompt, then the step fails
    ├── LogicError          the step stops with a clear reason
    │   ├── BudgetExceeded      no further LLM call starts (``busy``: not yet)
    │   ├── DeadlineExceeded    the workflow's deadline passed: the workflow fails
    │   └── InputTimedOut       a question to a human expired unanswered, with no
    │                           default answer: its step fails
    ├── FatalError          no retry: the workflow fails at once
    │   └── BudgetNotOpened     the workflow has no budget record: no call starts
    └── PoisonMessage       the message can never be handled: dead-lettered at once
        └── EventRefused        not its workflow's to act on (another tenant's, or unlike
                                what the store recorded): dead-lettered, the workflow untouched

``RECOVERY`` is that table and ``recovery_for`` reads it, along the error's
class hierarchy (``BudgetExceeded`` recovers as a ``LogicError``). A code in
``FALLBACK_CODES`` may also hand the call to the next model, whatever its
class: a model the endpoint does not know may be known to the next one. The
LLM client, structured output, the agent loop and the services act on what
``recovery_for`` returns; none of them decides by class on its own.

``PROVIDER_OUTAGE_CODES`` says which failures mean the model endpoint itself
is away (unreachable, timing out, failing with 5xx): those, and only those,
count towards opening a deployment's circuit breaker. A 429 means the
endpoint is up and pacing us; the rate limiter answers it, not the breaker.
A connection the server closed before answering (a kept-alive connection it
was closing) is no outage either: the LLM client sends that request again at
once, and only a second such drop becomes ``llm_unavailable``
(``runtime.llm.errors.closed_before_answering``).

Tool failures are not raised: the agent loop hands them back to the model as
the tool's result, so it can adapt (error class ``tool`` in the metrics).

The ``code`` is stable and appears in the API, SSE events and metric labels;
the ``message`` is safe to show a user (no stack traces, provider bodies or
internal hostnames). Details belong in logs, next to the workflow id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from types import MappingProxyType
from typing import ClassVar

from tributary_shared.core.events import BudgetExhausted, ErrorInfo

__all__ = [
    "FALLBACK_CODES",
    "PROVIDER_OUTAGE_CODES",
    "RECOVERY",
    "Backoff",
    "BudgetExceeded",
    "BudgetNotOpened",
    "DeadlineExceeded",
    "ErrorClass",
    "EventRefused",
    "FatalError",
    "InputTimedOut",
    "LogicError",
    "ModelError",
    "Outcome",
    "PoisonMessage",
    "Recovery",
    "TransientError",
    "TributaryError",
    "is_provider_outage",
    "recovery_for",
]


class ErrorClass(StrEnum):
    TRANSIENT = "transient"
    MODEL = "model"
    TOOL = "tool"
    LOGIC = "logic"
    FATAL = "fatal"
    INTERNAL = "internal"


class TributaryError(Exception):
    error_class: ClassVar[ErrorClass] = ErrorClass.INTERNAL
    default_code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code

    @property
    def retryable(self) -> bool:
        return recovery_for(self).retry is not None

    def to_info(self) -> ErrorInfo:
        return ErrorInfo(
            code=self.code,
            message=self.message,
            error_class=self.error_class.value,
            retryable=self.retryable,
        )


class TransientError(TributaryError):
    error_class = ErrorClass.TRANSIENT
    default_code = "transient_error"

    def __init__(
        self, message: str, *, code: str | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message, code=code)
        # The server's Retry-After, when it sent one.
        self.retry_after_s = retry_after_s


class ModelError(TributaryError):
    error_class = ErrorClass.MODEL
    default_code = "model_output_invalid"


class LogicError(TributaryError):
    error_class = ErrorClass.LOGIC
    default_code = "logic_error"


class BudgetExceeded(LogicError):
    """No further LLM call may start: the workflow's budget cannot cover it.

    With ``busy`` the budget is not used up: only other calls' reservations,
    still in flight, stand in the way, and the call may be tried again once
    they settle (code ``budget_busy``).
    """

    default_code = "budget_exhausted"

    def __init__(
        self, message: str, *, announcement: BudgetExhausted | None = None, busy: bool = False
    ) -> None:
        super().__init__(message, code="budget_busy" if busy else None)
        # Set only for the first refusal for good: the event to publish about it.
        self.announcement = announcement
        self.busy = busy


class DeadlineExceeded(LogicError):
    """The workflow's deadline passed before the work could be done; retrying cannot help.

    The code says where it passed: ``deadline_exceeded`` in general,
    ``llm_admission_deadline_exceeded`` while an LLM call waited for its turn
    at a deployment (its rate limit, its open circuit breaker). Every other
    step of the workflow is past the same deadline, so the workflow fails.
    """

    default_code = "deadline_exceeded"


class InputTimedOut(LogicError):
    """An input request (``ask_human``) expired unanswered and the workflow's
    ``on_input_timeout`` (or TRIBUTARY_ON_INPUT_TIMEOUT) says to fail: its step fails,
    and its dependents are skipped as after any failed step."""

    default_code = "input_timeout"


class FatalError(TributaryError):
    error_class = ErrorClass.FATAL
    default_code = "fatal_error"


class BudgetNotOpened(FatalError):
    """The workflow's budget was never opened (or is gone): no call is paid from nothing."""

    default_code = "budget_not_opened"


class PoisonMessage(TributaryError):
    error_class = ErrorClass.INTERNAL
    default_code = "poison_message"


class EventRefused(PoisonMessage):
    """A worker refused an event that is not its workflow's to act on.

    The event names a workflow of another tenant, or says something other than
    what the workflow store recorded (a dispatch unlike the stored plan, a step
    result unlike the stored outcome): a forgery, or a message gone astray.
    Handling it again cannot change that, and it must not end the workflow it
    names: that workflow goes on as recorded.
    """

    default_code = "event_refused"


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter; a server's Retry-After is waited out in full.

    Attempt ``n`` waits between half and all of ``base_s * 2 ** (n - 1)``,
    never more than the cap. The jitter spreads out clients that failed
    together, so they do not all come back at the same instant. A server that
    says when to come back is not asked again sooner, whatever the cap: that is
    what turns one rate limit into a storm of them. (How long a caller may wait
    at all is its own limit, not the backoff's.)
    """

    base_s: float
    cap_s: float
    honours_retry_after: bool = True

    def delay(
        self,
        attempt: int,
        *,
        jitter: float,
        retry_after_s: float | None = None,
        cap_s: float | None = None,
    ) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based).

        ``jitter`` is a draw from [0, 1] (the caller owns the randomness, so
        this stays pure); ``cap_s`` replaces the table's cap when an operator
        configured one.
        """
        cap = self.cap_s if cap_s is None else cap_s
        # The exponent is bounded first: a call patient for days makes thousands of
        # attempts, and 2.0 ** 1024 overflows long after every cap is reached.
        exponential = min(cap, self.base_s * 2.0 ** min(attempt - 1, 64))
        jittered = exponential / 2 + jitter * exponential / 2
        if self.honours_retry_after and retry_after_s is not None:
            return max(retry_after_s, jittered)
        return jittered


class Outcome(StrEnum):
    """Where an error ends once its retries, re-prompts and fallbacks are spent."""

    STEP_FAILS = "step_fails"
    """The step ends with the error; the workflow's other steps go on."""
    WORKFLOW_FAILS = "workflow_fails"
    """The workflow fails at once: its other steps would fail the same way."""
    DEAD_LETTER = "dead_letter"
    """The message is dead-lettered at once: handling it again cannot succeed."""
    REFUSED = "refused"
    """The message is dead-lettered at once and its workflow left as it is: the
    message is not the workflow's own, so it must not fail it either."""


@dataclass(frozen=True)
class Recovery:
    """How to recover from one class of error, in the order the steps are tried."""

    retry: Backoff | None = None
    """Repeat the same call after this backoff (the LLM client; attempts are configured)."""
    falls_back: bool = False
    """When the retries are spent, the next model of the chain takes the call over."""
    reprompts: int = 0
    """Corrective re-prompts that tell the model what was wrong with its reply."""
    outcome: Outcome = Outcome.STEP_FAILS

    @property
    def fails_workflow(self) -> bool:
        return self.outcome is Outcome.WORKFLOW_FAILS

    @property
    def dead_letters(self) -> bool:
        return self.outcome in (Outcome.DEAD_LETTER, Outcome.REFUSED)

    @property
    def spares_workflow(self) -> bool:
        """Dead-lettering the message must leave its workflow as it is."""
        return self.outcome is Outcome.REFUSED


RECOVERY: Mapping[type[TributaryError], Recovery] = MappingProxyType(
    {
        TributaryError: Recovery(),
        TransientError: Recovery(retry=Backoff(base_s=0.5, cap_s=30.0), falls_back=True),
        ModelError: Recovery(reprompts=1),
        LogicError: Recovery(),
        DeadlineExceeded: Recovery(outcome=Outcome.WORKFLOW_FAILS),
        FatalError: Recovery(outcome=Outcome.WORKFLOW_FAILS),
        PoisonMessage: Recovery(outcome=Outcome.DEAD_LETTER),
        EventRefused: Recovery(outcome=Outcome.REFUSED),
    }
)

FALLBACK_CODES: frozenset[str] = frozenset({"llm_model_not_found"})
"""Codes that may hand a call to the next model whatever their class."""

PROVIDER_OUTAGE_CODES: frozenset[str] = frozenset({"llm_unavailable", "llm_timeout"})
"""Transient codes that mean the model endpoint is away (connection refused or
reset, timeout, 5xx, overloaded), as opposed to pacing us (429) or answering."""


def is_provider_outage(error: BaseException) -> bool:
    """True when ``error`` says the model endpoint itself is away (see the module)."""
    return isinstance(error, TransientError) and error.code in PROVIDER_OUTAGE_CODES


def recovery_for(error: BaseException) -> Recovery:
    """The table's entry for ``error``: its class's, or its nearest ancestor's.

    Exceptions from outside the tree recover as internal errors.
    """
    recovery = next(
        (RECOVERY[cls] for cls in type(error).__mro__ if cls in RECOVERY),
        RECOVERY[TributaryError],
    )
    code = getattr(error, "code", None)
    if code in FALLBACK_CODES and not recovery.falls_back:
        return replace(recovery, falls_back=True)
    return recovery
